// The Qwen2.5-VL language model run on text-only input (transformers Qwen2_5_VLModel.language_model):
// token embedding, decoder layers (RMSNorm, grouped-query attention with q/k/v biases and RoPE, SwiGLU MLP),
// final RMSNorm. Its output is what transformers returns as hidden_states[-1] (the final norm applied),
// the Kandinsky 5 text embedding before the template prefix is cropped.
//
// Text-only positions: transformers uses arange(L) for all three M-RoPE components whatever the attention
// mask, so the rotary embedding is ordinary 1D RoPE over the full head dim (half-split pairs).
// Attention mask: causal plus padding (masked keys are invisible). Padded query rows are still computed,
// as transformers does; with right padding every real token's output equals that of the unpadded sequence.
// Both right and left padding match transformers on every row, padded ones included (goldens
// qwen_tiny_io / qwen_tiny_left_io).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "models/qwen25vl/qwen_config.h"
#include "ops/linear_int8.h"

namespace k5 {

class Checkpoint;

// How weights are held: float32 (converted at load), BF16 (memory-mapped when stored BF16), or int8
// weight-only (quantised at load, per-output-channel scales). Norm weights and biases are always float32.
enum class QwenWeights { f32, bf16, int8 };

// One projection: a float weight (F32/BF16) or an int8 one, and an optional bias.
struct QwenLinear {
  Tensor weight;
  ops::Int8Weight int8;
  Tensor bias;  // F32 [N] or undefined
  Tensor forward(Context& ctx, const Tensor& x) const;  // [M, K] -> [M, N] in the workspace
};

struct QwenDecoderLayer {
  Tensor input_layernorm, post_attention_layernorm;  // F32 [D]
  QwenLinear q_proj, k_proj, v_proj, o_proj;
  QwenLinear gate_proj, up_proj, down_proj;
};

class QwenTextModel {
 public:
  // `checkpoint_path`: a .safetensors file, an index.json, or a folder (sharded checkpoints work).
  // `config_path`: config.json; empty = config.json beside the checkpoint. Key layouts: released
  // (model.layers.N..., model.embed_tokens) and transformers 5 (model.language_model.*); visual.* and
  // lm_head are ignored. `weights` defaults from the context precision (fp32 -> f32, bf16 -> bf16).
  static QwenTextModel load(Context& ctx, const std::string& checkpoint_path, const std::string& config_path = "",
                            std::optional<QwenWeights> weights = std::nullopt);
  static QwenTextModel load(Context& ctx, const Checkpoint& checkpoint, const QwenTextConfig& config,
                            QwenWeights weights);

  // input_ids [L] (token ids < vocab_size), attention_mask [L] (1 = real token; empty = all real).
  // Returns hidden_states[-1]: F32 [L, hidden_size], owned.
  Tensor forward(Context& ctx, const std::vector<int32_t>& input_ids,
                 const std::vector<uint8_t>& attention_mask = {}) const;

  const QwenTextConfig& config() const { return config_; }
  QwenWeights weights() const { return weights_; }
  // Bytes held in private memory by converted/quantised weights (mapped BF16 weights are not counted).
  size_t converted_bytes() const { return converted_bytes_; }

 private:
  void decoder_layer(Context& ctx, const QwenDecoderLayer& layer, Tensor& x, const Tensor& cos, const Tensor& sin,
                     const Tensor& key_mask) const;

  QwenTextConfig config_;
  QwenWeights weights_ = QwenWeights::bf16;
  Tensor embed_tokens_;  // [vocab, D], as stored (rows converted on lookup)
  std::vector<QwenDecoderLayer> layers_;
  Tensor norm_;  // F32 [D]
  size_t converted_bytes_ = 0;
};

}  // namespace k5
