#include "models/qwen25vl/qwen_text_model.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "io/safetensors.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "ops/rope.h"

namespace k5 {

namespace {

// Where the language model lives in the checkpoint: released files use model.*, transformers 5 writes
// model.language_model.*.
std::string language_model_prefix(const Checkpoint& checkpoint) {
  for (const char* prefix : {"model.language_model.", "model.", "language_model.model.", "language_model.", ""})
    if (checkpoint.contains(std::string(prefix) + "embed_tokens.weight")) return prefix;
  fail(checkpoint.path(), ": no Qwen2.5-VL language model found (no '*embed_tokens.weight' tensor)");
}

// After a mapped weight has been converted, drops its pages from this process (they stay in the page cache;
// a later read faults them back from the file), so peak memory while converting is the converted copy plus
// one weight, not the whole checkpoint. Only whole pages inside the tensor's own bytes are dropped.
void release_mapped_pages(const Tensor& stored) {
  const auto page = uintptr_t(sysconf(_SC_PAGESIZE));
  const auto begin = (uintptr_t(stored.raw()) + page - 1) / page * page;
  const auto end = (uintptr_t(stored.raw()) + stored.bytes()) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

class Loader {
 public:
  Loader(const Checkpoint& checkpoint, std::string prefix, QwenWeights weights)
      : checkpoint_(checkpoint), prefix_(std::move(prefix)), weights_(weights) {}

  Tensor stored(const std::string& name, const Shape& shape) const {
    const std::string key = prefix_ + name;
    K5_CHECK(checkpoint_.contains(key), checkpoint_.path(), ": missing tensor '", key, "'");
    Tensor tensor = checkpoint_.tensor(key);
    K5_CHECK(tensor.shape() == shape, checkpoint_.path(), ": tensor '", key, "' has shape ",
             shape_string(tensor.shape()), ", expected ", shape_string(shape));
    K5_CHECK(tensor.dtype() == DType::F32 || tensor.dtype() == DType::BF16 || tensor.dtype() == DType::F16,
             checkpoint_.path(), ": tensor '", key, "' has dtype ", dtype_name(tensor.dtype()), ", expected a float");
    return tensor;
  }

  Tensor f32(const std::string& name, const Shape& shape) {
    Tensor tensor = stored(name, shape);
    if (tensor.dtype() == DType::F32) return tensor;
    converted_bytes += tensor.numel() * 4;
    return tensor.to(DType::F32);
  }

  QwenLinear linear(Context& ctx, const std::string& name, int64_t out_features, int64_t in_features, bool bias) {
    QwenLinear layer;
    const Tensor weight = stored(name + ".weight", {out_features, in_features});
    if (weights_ == QwenWeights::int8) {
      layer.int8 = ops::quantize_int8(ctx, weight);
      converted_bytes += weight.numel() + out_features * 4;
      release_mapped_pages(weight);
    } else {
      const DType dtype = weights_ == QwenWeights::f32 ? DType::F32 : DType::BF16;
      if (weight.dtype() == dtype) {
        layer.weight = weight;  // zero copy: a view of the mapped file
      } else {
        layer.weight = weight.to(dtype);
        converted_bytes += weight.numel() * dtype_size(dtype);
        release_mapped_pages(weight);
      }
    }
    if (bias) layer.bias = f32(name + ".bias", {out_features});
    return layer;
  }

  size_t converted_bytes = 0;

 private:
  const Checkpoint& checkpoint_;
  std::string prefix_;
  QwenWeights weights_;
};

std::string default_config_path(const std::string& checkpoint_path) {
  const std::filesystem::path path(checkpoint_path);
  const auto folder = std::filesystem::is_directory(path) ? path : path.parent_path();
  return (folder / "config.json").string();
}

}  // namespace

Tensor QwenLinear::forward(Context& ctx, const Tensor& x) const {
  const Tensor* b = bias.defined() ? &bias : nullptr;
  if (int8.values.defined()) return ops::linear_int8(ctx, x, int8, b);
  return ops::linear(ctx, x, weight, b);
}

QwenTextModel QwenTextModel::load(Context& ctx, const std::string& checkpoint_path, const std::string& config_path,
                                  std::optional<QwenWeights> weights) {
  const QwenTextConfig config =
      QwenTextConfig::from_json_file(config_path.empty() ? default_config_path(checkpoint_path) : config_path);
  const Checkpoint checkpoint = Checkpoint::open(checkpoint_path);
  const QwenWeights chosen =
      weights.value_or(ctx.precision() == Precision::fp32 ? QwenWeights::f32 : QwenWeights::bf16);
  return load(ctx, checkpoint, config, chosen);
}

QwenTextModel QwenTextModel::load(Context& ctx, const Checkpoint& checkpoint, const QwenTextConfig& config,
                                  QwenWeights weights) {
  QwenTextModel model;
  model.config_ = config;
  model.weights_ = weights;
  Loader loader(checkpoint, language_model_prefix(checkpoint), weights);
  const int64_t D = config.hidden_size, F = config.intermediate_size, hd = config.head_dim;
  const int64_t q_dim = config.num_attention_heads * hd, kv_dim = config.num_key_value_heads * hd;
  model.embed_tokens_ = loader.stored("embed_tokens.weight", {config.vocab_size, D});
  if (weights == QwenWeights::int8) {
    // Own the (BF16) table so no view keeps the checkpoint mapped: the pages read while quantising are
    // then released with the mapping and the process holds int8 weights only.
    const Tensor mapped = model.embed_tokens_;
    model.embed_tokens_ = mapped.clone();
    loader.converted_bytes += model.embed_tokens_.bytes();
    release_mapped_pages(mapped);
  }
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    QwenDecoderLayer layer;
    layer.input_layernorm = loader.f32(p + "input_layernorm.weight", {D});
    layer.post_attention_layernorm = loader.f32(p + "post_attention_layernorm.weight", {D});
    layer.q_proj = loader.linear(ctx, p + "self_attn.q_proj", q_dim, D, true);
    layer.k_proj = loader.linear(ctx, p + "self_attn.k_proj", kv_dim, D, true);
    layer.v_proj = loader.linear(ctx, p + "self_attn.v_proj", kv_dim, D, true);
    layer.o_proj = loader.linear(ctx, p + "self_attn.o_proj", D, q_dim, false);
    layer.gate_proj = loader.linear(ctx, p + "mlp.gate_proj", F, D, false);
    layer.up_proj = loader.linear(ctx, p + "mlp.up_proj", F, D, false);
    layer.down_proj = loader.linear(ctx, p + "mlp.down_proj", D, F, false);
    model.layers_.push_back(std::move(layer));
  }
  model.norm_ = loader.f32("norm.weight", {D});
  model.converted_bytes_ = loader.converted_bytes;
  return model;
}

void QwenTextModel::decoder_layer(Context& ctx, const QwenDecoderLayer& layer, Tensor& x, const Tensor& cos,
                                  const Tensor& sin, const Tensor& key_mask) const {
  auto scope = ctx.workspace().scope();
  const int64_t L = x.size(0), D = config_.hidden_size, hd = config_.head_dim;
  const int64_t Hq = config_.num_attention_heads, Hkv = config_.num_key_value_heads;

  // Self-attention block: x += o_proj(attention(rope(q), rope(k), v)).
  Tensor h = ctx.workspace().tensor(DType::F32, {L, D});
  ops::rms_norm(ctx, x, &layer.input_layernorm, float(config_.rms_norm_eps), h);
  Tensor q = layer.q_proj.forward(ctx, h).reshape({L, Hq, hd});
  Tensor k = layer.k_proj.forward(ctx, h).reshape({L, Hkv, hd});
  const Tensor v = layer.v_proj.forward(ctx, h).reshape({L, Hkv, hd});
  ops::rope_half_split(ctx, q, cos, sin);
  ops::rope_half_split(ctx, k, cos, sin);
  Tensor attended = ctx.workspace().tensor(DType::F32, {L, Hq, hd});
  ops::AttentionOptions options;
  options.causal = true;
  options.key_mask = &key_mask;
  ops::attention(ctx, q, k, v, attended, options);
  const Tensor o = layer.o_proj.forward(ctx, attended.reshape({L, Hq * hd}));
  ops::add(ctx, x, o, x);

  // MLP block: x += down(silu(gate(h)) * up(h)).
  ops::rms_norm(ctx, x, &layer.post_attention_layernorm, float(config_.rms_norm_eps), h);
  Tensor gate = layer.gate_proj.forward(ctx, h);
  const Tensor up = layer.up_proj.forward(ctx, h);
  ops::swiglu(ctx, gate, up, gate);
  const Tensor down = layer.down_proj.forward(ctx, gate);
  ops::add(ctx, x, down, x);
}

Tensor QwenTextModel::forward(Context& ctx, const std::vector<int32_t>& input_ids,
                              const std::vector<uint8_t>& attention_mask) const {
  const int64_t L = int64_t(input_ids.size()), D = config_.hidden_size, hd = config_.head_dim;
  K5_CHECK(L > 0, "qwen: input_ids is empty");
  K5_CHECK(attention_mask.empty() || int64_t(attention_mask.size()) == L, "qwen: attention_mask has ",
           attention_mask.size(), " entries, input_ids ", L);

  // Embedding lookup [L, D].
  Tensor x = Tensor::empty(DType::F32, {L, D});
  const size_t row_bytes = size_t(D) * dtype_size(embed_tokens_.dtype());
  for (int64_t i = 0; i < L; ++i) {
    const int32_t id = input_ids[size_t(i)];
    K5_CHECK(id >= 0 && id < config_.vocab_size, "qwen: input_ids[", i, "] = ", id, " is outside the vocabulary [0, ",
             config_.vocab_size, ")");
    convert_to_f32(static_cast<const uint8_t*>(embed_tokens_.raw()) + size_t(id) * row_bytes, embed_tokens_.dtype(),
                   x.data<float>() + i * D, size_t(D));
  }

  // RoPE tables [L, hd/2] for positions arange(L), computed in float32 as transformers does.
  Tensor cos = Tensor::empty(DType::F32, {L, hd / 2}), sin = Tensor::empty(DType::F32, {L, hd / 2});
  for (int64_t i = 0; i < hd / 2; ++i) {
    const float inv_freq = 1.0f / std::pow(float(config_.rope_theta), float(2 * i) / float(hd));
    for (int64_t pos = 0; pos < L; ++pos) {
      const float angle = float(pos) * inv_freq;
      cos.data<float>()[pos * (hd / 2) + i] = std::cos(angle);
      sin.data<float>()[pos * (hd / 2) + i] = std::sin(angle);
    }
  }

  Tensor key_mask = Tensor::empty(DType::U8, {L});
  for (int64_t i = 0; i < L; ++i)
    key_mask.data<uint8_t>()[i] = attention_mask.empty() || attention_mask[size_t(i)] != 0 ? 1 : 0;

  for (const QwenDecoderLayer& layer : layers_) decoder_layer(ctx, layer, x, cos, sin, key_mask);
  ops::rms_norm(ctx, x, &norm_, float(config_.rms_norm_eps), x);
  return x;
}

}  // namespace k5
