// LoRA adapters for the CrossDiT, as the official pipelines load them (t2v_pipeline.load_adapter over PEFT):
// a safetensors file of `<linear>.lora_A.weight` [r, in] / `<linear>.lora_B.weight` [out, r] pairs, keys
// optionally prefixed `base_model.model.` or `transformer.` and carrying `.default`; the PEFT LoraConfig as
// JSON beside it (`config_lora.json`, the official name, or `adapter_config.json`, PEFT's); an optional
// trigger word in the file's metadata (`trigger`). Each adapted linear computes W x + m * s * B (A x) with
// s = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora; rank_pattern / alpha_pattern per layer) and m the
// user's multiplier; k5 merges the product into W at load, so a forward costs nothing extra.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "io/kandinsky_config.h"

namespace k5 {

// A command-line adapter: "PATH" or "PATH:MULTIPLIER" (the suffix is a multiplier only when it parses as a
// number, so paths with colons still work). PATH is the safetensors file or the folder holding it.
struct LoraSpec {
  std::string path;
  float multiplier = 1.0f;
};
LoraSpec parse_lora_spec(const std::string& text);

// The file of an adapter that `path` names: the path itself, or in a folder the official or PEFT name, else its only
// .safetensors. Throws a one-line error when there is none.
std::string find_lora_file(const std::string& path);

struct LoraLayer {
  Tensor down;         // lora_A [r, in], as stored (F32, BF16 or F16; a view of the mapped file)
  Tensor up;           // lora_B [out, r], as stored
  float scale = 1.0f;  // multiplier * lora_alpha / r (or / sqrt(r))
};

struct LoraAdapter {
  std::string given_path;  // as given on the command line (without the multiplier)
  std::string path;        // the safetensors file
  std::string config;      // the JSON config it was read with, or empty (then lora_alpha = r: scale 1)
  std::string trigger;     // from the metadata; the official T2V / I2V pipelines put it before the expanded prompt
  float multiplier = 1.0f;
  std::string file_stamp;                   // the file's and its config's (io/file_stamp.h) when they were read
  std::map<std::string, LoraLayer> layers;  // DiT linear (e.g. "visual_transformer_blocks.0.feed_forward.in_layer")
  std::vector<std::string> left_alone;      // layers with weights that the config does not target, as PEFT
};

// Reads and checks an adapter against a DiT: every key a lora_A/lora_B pair of one of its linear layers with
// matching shapes and the config's rank; config options that change more than W are refused. Throws a one-line
// error naming the file and key or option.
LoraAdapter load_lora(const LoraSpec& spec, const DitParams& params);

// One info line (file, layers, multiplier, config, trigger); warnings for a missing config and layers left alone.
void log_lora(Logger& log, const LoraAdapter& adapter);
// The adapters of a command line ("PATH[:MULTIPLIER]" each), loaded and logged.
std::vector<LoraAdapter> load_loras(Context& ctx, const std::vector<std::string>& specs, const DitParams& params);

// Whether any adapter changes `layer`.
bool lora_adapts(const std::vector<LoraAdapter>& adapters, const std::string& layer);
// weight [out, in] (F32, BF16 or F16, contiguous on the host) + scale * up * down for each adapter of `layer`,
// computed in float32 and stored as `dtype` in a new tensor (the weight, often a view of a mapped file, is left as
// it is); row blocks run on the context's CPU threads.
Tensor merge_lora(Context& ctx, const std::vector<LoraAdapter>& adapters, const std::string& layer,
                  const Tensor& weight, DType dtype);

// The prompt prefix of the adapters' trigger words: each distinct one once, in order, skipping adapters at
// multiplier 0. (The official pipelines run one adapter at a time and put its trigger there.)
std::string lora_triggers(const std::vector<LoraAdapter>& adapters);

}  // namespace k5
