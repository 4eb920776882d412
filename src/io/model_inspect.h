// `k5 info`: what a checkpoint is, judged from its tensor names and shapes (never from file names), and
// what it costs to run.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"

namespace k5 {

enum class ComponentKind { CrossDiT, HunyuanVideoVae, FluxVae, Qwen25VL, ClipText, CrossDiTLora, Unknown };
const char* component_kind_name(ComponentKind kind);  // "CrossDiT", "HunyuanVideo VAE", ..., "unknown component"

struct ComponentReport {
  std::string path;  // file, index or folder the component was read from
  ComponentKind kind = ComponentKind::Unknown;
  std::string variant;                                     // "Lite video (T2V, I2V-capable)", "7B", ...
  std::vector<std::pair<std::string, int64_t>> dimensions;  // ("model_dim", 1792), ("visual_blocks", 32), ...
  int64_t parameters = 0;
  size_t tensor_count = 0;
  std::map<std::string, size_t> dtype_tensors;  // "BF16" -> tensor count
  uint64_t weight_bytes = 0;                    // sum of tensor sizes
  uint64_t bytes_on_disk = 0;                   // sum of the component's file sizes
  uint64_t activation_bytes = 0;                // rough working-set estimate for `workload`
  std::string workload;                         // what activation_bytes assumes ("5 s 512x768 video")
  std::vector<std::string> sample_names;        // first tensor names, for unknown components

  // Weights are mmapped in their stored dtype, so running needs about this much memory.
  uint64_t estimated_ram_bytes() const { return weight_bytes + activation_bytes; }
  int64_t dimension(const std::string& name, int64_t fallback = -1) const;
};

struct ModelReport {
  std::string path;
  std::vector<ComponentReport> components;
};

// Classifies one set of tensors (a checkpoint's infos) and fills kind, variant, dimensions, counts and the
// estimate; path and bytes_on_disk are left to the caller.
ComponentReport classify_tensors(const std::vector<TensorInfo>& tensors);

// One checkpoint (a .safetensors file, an index, or a folder that holds one model's shards).
ComponentReport inspect_checkpoint(const std::string& path);

// PATH = a .safetensors file, an index.json, a component folder, or a model folder (official layout:
// model/, vae/, text_encoder/, text_encoder2/, flux/vae/; or diffusers: transformer/, vae/, text_encoder/...).
// Unreadable or corrupt files throw k5::Error.
ModelReport inspect_model(const std::string& path);

std::string format_report(const ModelReport& report);  // human-readable, several lines
nlohmann::json report_json(const ModelReport& report);

// "1.97 GB" (decimal units, as disk sizes are usually quoted) and "1.97 B" parameter counts.
std::string format_bytes(uint64_t bytes);
std::string format_count(int64_t count);

}  // namespace k5
