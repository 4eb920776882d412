// CrossDiT: the Kandinsky 5 diffusion transformer (official kandinsky/models/dit.py, DiffusionTransformer3D).
// Text tokens pass the encoder blocks; visual patch tokens pass the decoder blocks (self-attention with 3D
// RoPE, dense or NABLA; cross-attention to the text; feed-forward), each modulated by the time embedding.
#pragma once

#include <memory>
#include <string>

#include "core/context.h"
#include "core/tensor.h"
#include "io/kandinsky_config.h"
#include "io/safetensors.h"
#include "models/crossdit/crossdit_weights.h"

namespace k5 {

enum class DitAttention { automatic, dense, nabla };
DitAttention parse_dit_attention(const std::string& name);

struct DitInputs {
  Tensor x;                  // [T, H, W, Cin] F32
  Tensor text_embed;         // [L, in_text_dim] F32
  Tensor pooled_text_embed;  // [1, in_text_dim2] F32
  float time = 0;            // sampling time * 1000
  Tensor attention_mask;     // [L] U8 (1 = real token), or undefined
  // MagCache (official magcache_utils): with `visual_residual` set, either the decoder blocks are skipped and
  // the stored residual (visual tokens after the blocks minus before) is added (`reuse_visual_residual`), or
  // the blocks run and their residual is stored there.
  Tensor* visual_residual = nullptr;
  bool reuse_visual_residual = false;
};

class CrossDit {
 public:
  // On Device::CUDA the weights are uploaded once and every forward runs on the GPU (inputs and the result
  // stay host tensors: they are copied over and back). `loras` (load_lora) are merged into the weights.
  // `int8_weights`: the blocks' GEMM weights quantised to int8 per output channel (load_crossdit_weights).
  static CrossDit load(const KandinskyConfig& config, const std::string& weights_path, Precision precision,
                       DitAttention attention = DitAttention::automatic, Device device = Device::CPU,
                       const std::vector<LoraAdapter>& loras = {}, bool int8_weights = false);

  // velocity [T, H, W, out_visual_dim] F32 (an owned host tensor).
  Tensor forward(Context& ctx, const DitInputs& inputs) const;

  const KandinskyConfig& config() const { return config_; }
  const DitParams& params() const { return config_.dit; }
  bool uses_nabla() const { return nabla_; }
  Device device() const { return device_; }

  // Checks input shapes against the config; throws a one-line error naming the tensor.
  void check_inputs(const DitInputs& inputs) const;

 private:
  KandinskyConfig config_;
  Checkpoint checkpoint_;  // keeps the mapped weights alive
  CrossDitWeights weights_;
  bool nabla_ = false;
  Device device_ = Device::CPU;
};

}  // namespace k5
