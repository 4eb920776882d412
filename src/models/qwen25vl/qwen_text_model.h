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
//
// Decoding (qwen_generate.h): `forward_cached` runs new tokens (or precomputed input embeddings, e.g. image
// features spliced in) at explicit M-RoPE positions [3, L] and appends their keys/values to a QwenKvCache;
// `logits` applies lm_head (or the embedding table when the checkpoint has no lm_head: tied embeddings).
// M-RoPE: the rotary half-dims are split into config.mrope_section = (t, h, w) consecutive sections; the
// frequencies of section s use position row s (transformers' Qwen2_5_VLRotaryEmbedding / 4.x
// apply_multimodal_rotary_pos_emb), then repeated for the second half (half-split pairs).
//
// Devices: a model loaded with Device::CUDA holds its weights on the GPU (uploaded once; F32 or BF16, int8 is
// refused there) and runs every layer there, the KV cache included. The token embedding table stays on the
// host (as stored, mapped): `embed` looks rows up there and the forwards upload them. What the API takes may
// be host or device tensors; what it returns are owned host tensors.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "models/qwen25vl/qwen_config.h"
#include "ops/linear_layer.h"

namespace k5 {

class Checkpoint;

// How weights are held: float32 (converted at load), BF16 (memory-mapped when stored BF16), or int8
// weight-only (quantised at load, per-output-channel scales). Norm weights and biases are always float32.
enum class QwenWeights { f32, bf16, int8 };

struct QwenDecoderLayer {
  Tensor input_layernorm, post_attention_layernorm;  // F32 [D]
  ops::LinearLayer q_proj, k_proj, v_proj, o_proj;
  ops::LinearLayer gate_proj, up_proj, down_proj;
};

// M-RoPE position ids of L tokens, [3, L] row-major (rows: temporal, height, width). Text tokens have one
// position in all three rows: text_positions(start, L) = start..start+L-1 three times.
std::vector<int64_t> text_positions(int64_t start, int64_t length);

// Keys (after RoPE) and values of every token run so far, per layer: [capacity, kv_heads, head_dim] F32 on
// the model's device, the first `length` rows filled. Grows (doubling) as tokens are appended.
struct QwenKvCache {
  std::vector<Tensor> keys, values;
  int64_t length = 0;
};

class QwenTextModel {
 public:
  // `checkpoint_path`: a .safetensors file, an index.json, or a folder (sharded checkpoints work).
  // `config_path`: config.json; empty = config.json beside the checkpoint. Key layouts: released
  // (model.layers.N..., model.embed_tokens) and transformers 5 (model.language_model.*); visual.* is
  // ignored. lm_head is loaded only with `with_lm_head` (for generation): lm_head.weight, or the embedding table when
  // the checkpoint has none (tie_word_embeddings: transformers does not save the tied copy). `weights`
  // defaults from the context precision (fp32 -> f32, bf16 -> bf16). `device`: where the weights, the
  // activations and the KV cache live (int8 weights are quantised on the CPU, then uploaded).
  static QwenTextModel load(Context& ctx, const std::string& checkpoint_path, const std::string& config_path = "",
                            std::optional<QwenWeights> weights = std::nullopt, bool with_lm_head = false,
                            Device device = Device::CPU);
  static QwenTextModel load(Context& ctx, const Checkpoint& checkpoint, const QwenTextConfig& config,
                            QwenWeights weights, bool with_lm_head = false, Device device = Device::CPU);

  // input_ids [L] (token ids < vocab_size), attention_mask [L] (1 = real token; empty = all real).
  // Returns hidden_states[-1]: F32 [L, hidden_size], an owned host tensor.
  Tensor forward(Context& ctx, const std::vector<int32_t>& input_ids,
                 const std::vector<uint8_t>& attention_mask = {}) const;

  // Token embeddings: F32 [L, hidden_size], an owned host tensor (looked up in the host table).
  Tensor embed(const std::vector<int32_t>& input_ids) const;
  // Runs L new tokens after the `cache.length` cached ones (causal attention over all of them) and appends
  // their keys/values to `cache`. input_embeds: F32 [L, hidden_size] (embed(ids), or with image features
  // spliced in), contiguous, on the host or the model's device; position_ids: [3, L] row-major. Returns the
  // final-norm hidden states F32 [L, hidden_size], an owned host tensor.
  Tensor forward_cached(Context& ctx, const Tensor& input_embeds, const std::vector<int64_t>& position_ids,
                        QwenKvCache& cache) const;
  // lm_head of final-norm hidden states (host or device): [N, hidden_size] -> F32 [N, vocab_size], an owned
  // host tensor (generation reads one row per step).
  Tensor logits(Context& ctx, const Tensor& hidden) const;
  bool has_lm_head() const { return lm_head_.weight.defined() || lm_head_.int8.values.defined(); }

  const QwenTextConfig& config() const { return config_; }
  QwenWeights weights() const { return weights_; }
  Device device() const { return device_; }
  // Bytes held in private host memory by converted/quantised weights (mapped BF16 weights are not counted;
  // on the GPU nothing: converted copies are freed once uploaded).
  size_t converted_bytes() const { return converted_bytes_; }

 private:
  // With `cache_keys`/`cache_values` ([capacity, Hkv, hd], rows [0, cached) filled), the new keys/values
  // are written at rows [cached, cached + L) and attention runs over rows [0, cached + L); `key_mask` is then
  // unused (may be undefined).
  void decoder_layer(Context& ctx, const QwenDecoderLayer& layer, Tensor& x, const Tensor& cos, const Tensor& sin,
                     const Tensor& key_mask, Tensor* cache_keys = nullptr, Tensor* cache_values = nullptr,
                     int64_t cached = 0) const;

  QwenTextConfig config_;
  QwenWeights weights_ = QwenWeights::bf16;
  Device device_ = Device::CPU;
  Tensor embed_tokens_;  // [vocab, D] on the host, as stored (rows converted on lookup)
  std::vector<QwenDecoderLayer> layers_;
  Tensor norm_;         // F32 [D]
  ops::LinearLayer lm_head_;  // [vocab, D], loaded on request
  size_t converted_bytes_ = 0;
};

}  // namespace k5
