// Where a Kandinsky 5 model's pieces are on disk. `k5 generate -m` takes:
//   - an official config (.yaml): its "./weights/..." paths are resolved against the folder above the
//     config's folder (the official repository root: configs/ beside weights/), the config's own folder,
//     then the current directory;
//   - a model folder holding configs/*.yaml (or *.yaml) and weights/: the config is --config NAME, else
//     the only one, else the only one whose DiT checkpoint is present;
//   - a diffusers-format folder (model_index.json): transformer/, vae/, text_encoder/, tokenizer/,
//     text_encoder_2/, tokenizer_2/, run with the official pipeline and the official defaults.
// Explicit per-component paths override the config. A missing piece is one error line listing every
// piece missing and every place looked at.
#pragma once

#include <string>
#include <vector>

#include "io/kandinsky_config.h"
#include "pipelines/text_conditioning.h"

namespace k5 {

struct ModelOverrides {
  std::string config;         // path, or a config name in the model folder ("k5_lite_t2v_5s_sft_sd")
  std::string dit;            // DiT .safetensors
  std::string vae;            // VAE folder (config.json + weights)
  std::string text_encoder;   // Qwen2.5-VL folder
  std::string text_encoder2;  // CLIP folder
};

struct ModelFiles {
  KandinskyConfig config;
  std::string dit;
  std::string vae;
  TextEncoderPaths text_encoders;
};

ModelFiles find_model_files(const std::string& model, const ModelOverrides& overrides = {});

// The config names a model folder holds (configs/*.yaml and *.yaml, without the extension), sorted; for a config
// file, its own name.
std::vector<std::string> config_names(const std::string& model);

}  // namespace k5
