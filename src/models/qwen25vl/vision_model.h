// The Qwen2.5-VL vision tower (transformers' Qwen2_5_VisionTransformerPretrainedModel): image patches
// (preprocess_qwen_images) -> image embeddings for the language model (its pooler_output).
//
//   patch embed   Conv3d with kernel = stride = (temporal_patch, patch, patch) over one flattened patch row,
//                 i.e. a linear [hidden, 3 * T * p * p] without bias
//   window order  the patches are reordered by merge unit (merge x merge patches) into windows of
//                 window_size / patch / merge units per side (window_index); RoPE tables likewise
//   blocks        x += proj(attention(rope(q), rope(k), v)) within each window (each whole image on
//                 fullatt_block_indexes); x += down(silu(gate(x')) * up(x')); RMSNorm (eps 1e-6) before each
//   RoPE          2D: head_dim/4 frequencies theta^(-2i/(head_dim/2)) turned by the patch row, the same by the
//                 patch column, concatenated, half-split pairs over the whole head
//   merger        RMSNorm, merge x merge neighbouring patches concatenated, Linear + GELU(erf) + Linear to
//                 out_hidden_size; then the window order is undone
//
// Images never attend to each other, so several images are run one after another. fp32 follows the
// reference; Precision::bf16 uses BF16 weights and matmul inputs (float32 accumulation, norms, RoPE and
// softmax in float32), as the language model does.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "models/qwen25vl/image_processor.h"

namespace k5 {

class Checkpoint;

// vision_config of a Qwen2.5-VL config.json (released files and transformers 5 both nest it there).
struct QwenVisionConfig {
  int64_t depth = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_heads
  int64_t in_channels = 3;
  int64_t patch_size = 14;
  int64_t spatial_merge_size = 2;
  int64_t temporal_patch_size = 2;
  int64_t window_size = 112;
  int64_t out_hidden_size = 0;
  std::vector<int64_t> fullatt_block_indexes;
  double rope_theta = 10000.0;

  static QwenVisionConfig from_json_file(const std::string& path);
  int64_t patch_dim() const { return in_channels * temporal_patch_size * patch_size * patch_size; }
};

struct QwenVisionLinear {
  Tensor weight;  // [N, K] F32 or BF16
  Tensor bias;    // F32 [N] or undefined
};

struct QwenVisionBlock {
  Tensor norm1, norm2;  // F32 [hidden]
  QwenVisionLinear qkv, proj, gate_proj, up_proj, down_proj;
  bool full_attention = false;
};

// The window reordering of one image: merge units listed window after window, and the window bounds.
struct QwenVisionWindows {
  std::vector<int64_t> unit_order;     // window_index: position u of the reordered sequence holds unit unit_order[u]
  std::vector<int64_t> window_starts;  // in patches, from 0 to patches (cu_window_seqlens, empty windows dropped)
};
QwenVisionWindows qwen_vision_windows(const QwenGridTHW& grid, int64_t merge_size, int64_t window_size,
                                      int64_t patch_size);

class QwenVisionModel {
 public:
  // `checkpoint_path`: a .safetensors file, an index.json or a folder; `config_path`: config.json (empty =
  // beside the checkpoint). Keys `visual.*` (transformers 4.x) or `model.visual.*` (transformers 5).
  // Weights are BF16 under Precision::bf16, float32 under fp32 (or as `weights_dtype` says), on `device`.
  static QwenVisionModel load(Context& ctx, const std::string& checkpoint_path, const std::string& config_path = "",
                              std::optional<DType> weights_dtype = std::nullopt, Device device = Device::CPU);
  static QwenVisionModel load(const Checkpoint& checkpoint, const QwenVisionConfig& config, DType weights_dtype,
                              Device device = Device::CPU);

  // pixel_values: F32 [sum of patches, patch_dim] (preprocess_qwen_images) in host memory, one grid per image.
  // Returns image embeddings F32 [sum of patches / merge^2, out_hidden_size] in host memory, owned, images in
  // order; computed on the model's device.
  Tensor forward(Context& ctx, const Tensor& pixel_values, const std::vector<QwenGridTHW>& grids) const;

  const QwenVisionConfig& config() const { return config_; }
  Device device() const { return device_; }

 private:
  // One image: patches [N, patch_dim] -> [N / merge^2, out_hidden_size] written to `out`.
  void forward_image(Context& ctx, const Tensor& patches, const QwenGridTHW& grid, Tensor out) const;
  void block(Context& ctx, const QwenVisionBlock& block, Tensor& x, const Tensor& cos, const Tensor& sin,
             const std::vector<int64_t>& window_starts) const;

  QwenVisionConfig config_;
  Device device_ = Device::CPU;
  Tensor patch_embed_;  // [hidden, patch_dim]
  std::vector<QwenVisionBlock> blocks_;
  Tensor merger_norm_;  // F32 [hidden]
  QwenVisionLinear merger_fc1_, merger_fc2_;
};

}  // namespace k5
