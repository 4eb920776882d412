#include "models/qwen25vl/qwen_text_model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

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

// Reads, converts and places the weights. On the GPU every tensor is uploaded once (converted on the host
// first when the stored dtype differs) and the mapped pages it was read from are dropped, so the process keeps
// no host copy of the projections.
class Loader {
 public:
  Loader(const Checkpoint& checkpoint, std::string prefix, QwenWeights weights, Device device)
      : checkpoint_(checkpoint), prefix_(std::move(prefix)), weights_(weights), device_(device) {}

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
    if (device_ != Device::CPU) return tensor.to(DType::F32).to_device(device_);
    if (tensor.dtype() == DType::F32) return tensor;
    converted_bytes += tensor.numel() * 4;
    return tensor.to(DType::F32);
  }

  ops::LinearLayer linear(Context& ctx, const std::string& name, int64_t out_features, int64_t in_features, bool bias) {
    ops::LinearLayer layer;
    const Tensor weight = stored(name + ".weight", {out_features, in_features});
    if (weights_ == QwenWeights::int8) {
      try {
        layer.int8 = ops::quantize_int8(ctx, weight);  // on the CPU, then uploaded whole
      } catch (const Error& error) {
        fail(checkpoint_.path(), ": tensor '", prefix_, name, ".weight': ", error.what());
      }
      if (device_ != Device::CPU)
        layer.int8 = {layer.int8.values.to_device(device_), layer.int8.scales.to_device(device_)};
      else
        converted_bytes += weight.numel() + out_features * 4;
      release(name + ".weight");
    } else if (device_ != Device::CPU) {
      const DType dtype = weights_ == QwenWeights::f32 ? DType::F32 : DType::BF16;
      layer.weight = weight.to(dtype).to_device(device_);
      release(name + ".weight");
    } else {
      const DType dtype = weights_ == QwenWeights::f32 ? DType::F32 : DType::BF16;
      if (weight.dtype() == dtype) {
        layer.weight = weight;  // zero copy: a view of the mapped file
        checkpoint_.populate_pages(prefix_ + name + ".weight");
      } else {
        layer.weight = weight.to(dtype);
        converted_bytes += weight.numel() * dtype_size(dtype);
        release(name + ".weight");
      }
    }
    if (bias) layer.bias = f32(name + ".bias", {out_features});
    return layer;
  }

  // Drops a converted tensor's mapped pages from this process (SafetensorsFile::release_pages).
  void release(const std::string& name) const { checkpoint_.release_pages(prefix_ + name); }

  size_t converted_bytes = 0;

 private:
  const Checkpoint& checkpoint_;
  std::string prefix_;
  QwenWeights weights_;
  Device device_;
};

std::string default_config_path(const std::string& checkpoint_path) {
  const std::filesystem::path path(checkpoint_path);
  const auto folder = std::filesystem::is_directory(path) ? path : path.parent_path();
  return (folder / "config.json").string();
}

// The checkpoint key of lm_head: the same in transformers 4.x and 5.x files.
std::optional<std::string> lm_head_key(const Checkpoint& checkpoint) {
  for (const char* key : {"lm_head.weight", "language_model.lm_head.weight"})
    if (checkpoint.contains(key)) return std::string(key);
  return std::nullopt;
}

// RoPE tables cos, sin [L, hd/2] (float32, as transformers computes them), made on the host and placed on
// `device`. Rotary frequency i belongs to the M-RoPE section s (consecutive sections of config.mrope_section
// half-dims) and turns by position row s; without mrope_section every frequency uses row 0.
void rope_tables(const QwenTextConfig& config, const std::vector<int64_t>& position_ids, int64_t L, Device device,
                 Tensor& cos, Tensor& sin) {
  const int64_t half = config.head_dim / 2;
  std::vector<int64_t> row_of(size_t(half), 0);
  for (int64_t s = 0, i = 0; s < int64_t(config.mrope_section.size()); ++s)
    for (int64_t n = 0; n < config.mrope_section[size_t(s)] && i < half; ++n) row_of[size_t(i++)] = s;
  cos = Tensor::empty(DType::F32, {L, half});
  sin = Tensor::empty(DType::F32, {L, half});
  for (int64_t i = 0; i < half; ++i) {
    const float inv_freq = 1.0f / std::pow(float(config.rope_theta), float(2 * i) / float(config.head_dim));
    const int64_t* positions = position_ids.data() + row_of[size_t(i)] * L;
    for (int64_t pos = 0; pos < L; ++pos) {
      const float angle = float(positions[pos]) * inv_freq;
      cos.data<float>()[pos * half + i] = std::cos(angle);
      sin.data<float>()[pos * half + i] = std::sin(angle);
    }
  }
  cos = cos.to_device(device);
  sin = sin.to_device(device);
}

// destination <- source: same dtype and shape, both contiguous, on any devices (KV cache rows, input
// embeddings onto the model's device).
void copy_rows(const Tensor& destination, const Tensor& source) {
  K5_CHECK(destination.dtype() == source.dtype() && destination.shape() == source.shape() &&
               destination.is_contiguous() && source.is_contiguous(),
           "qwen: cannot copy ", source.describe(), " into ", destination.describe(), " (contiguous rows needed)");
  copy_bytes(destination.raw(), destination.device(), source.raw(), source.device(), source.bytes());
}

// Makes room for `needed` rows in every layer's cache (on the model's device), doubling so appending one
// token is amortised O(1).
void reserve_cache(QwenKvCache& cache, int64_t layers, int64_t kv_heads, int64_t head_dim, int64_t needed,
                   Device device) {
  if (cache.keys.empty()) {
    cache.keys.resize(size_t(layers));
    cache.values.resize(size_t(layers));
    cache.length = 0;
  }
  K5_CHECK(int64_t(cache.keys.size()) == layers, "qwen: KV cache has ", cache.keys.size(), " layers, model ", layers);
  const int64_t capacity = cache.keys[0].defined() ? cache.keys[0].size(0) : 0;
  K5_CHECK(capacity == 0 || cache.keys[0].device() == device, "qwen: the KV cache is on ",
           device_name(cache.keys[0].device()), ", the model on ", device_name(device));
  if (needed <= capacity) return;
  const int64_t grown = std::max({needed, 2 * capacity, int64_t(64)});
  for (std::vector<Tensor>* tensors : {&cache.keys, &cache.values}) {
    for (Tensor& tensor : *tensors) {
      Tensor bigger = Tensor::empty(DType::F32, {grown, kv_heads, head_dim}, device);
      if (cache.length > 0) copy_rows(bigger.slice(0, 0, cache.length), tensor.slice(0, 0, cache.length));
      tensor = bigger;
    }
  }
}

}  // namespace

std::vector<int64_t> text_positions(int64_t start, int64_t length) {
  std::vector<int64_t> positions(size_t(3 * length));
  for (int64_t row = 0; row < 3; ++row)
    for (int64_t i = 0; i < length; ++i) positions[size_t(row * length + i)] = start + i;
  return positions;
}

QwenTextModel QwenTextModel::load(Context& ctx, const std::string& checkpoint_path, const std::string& config_path,
                                  std::optional<QwenWeights> weights, bool with_lm_head, Device device) {
  const QwenTextConfig config =
      QwenTextConfig::from_json_file(config_path.empty() ? default_config_path(checkpoint_path) : config_path);
  const Checkpoint checkpoint = Checkpoint::open(checkpoint_path);
  const QwenWeights chosen =
      weights.value_or(ctx.precision() == Precision::fp32 ? QwenWeights::f32 : QwenWeights::bf16);
  return load(ctx, checkpoint, config, chosen, with_lm_head, device);
}

QwenTextModel QwenTextModel::load(Context& ctx, const Checkpoint& checkpoint, const QwenTextConfig& config,
                                  QwenWeights weights, bool with_lm_head, Device device) {
  QwenTextModel model;
  model.config_ = config;
  model.weights_ = weights;
  model.device_ = device;
  Loader loader(checkpoint, language_model_prefix(checkpoint), weights, device);
  const int64_t D = config.hidden_size, F = config.intermediate_size, hd = config.head_dim;
  const int64_t q_dim = config.num_attention_heads * hd, kv_dim = config.num_key_value_heads * hd;
  model.embed_tokens_ = loader.stored("embed_tokens.weight", {config.vocab_size, D});
  if (weights == QwenWeights::int8) {
    // Own the (BF16) table so no view keeps the checkpoint mapped: the pages read while quantising are
    // then released with the mapping and the process holds int8 weights only.
    model.embed_tokens_ = model.embed_tokens_.clone();
    loader.converted_bytes += model.embed_tokens_.bytes();
    loader.release("embed_tokens.weight");
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
  if (with_lm_head) {
    if (const auto key = lm_head_key(checkpoint)) {
      Loader head_loader(checkpoint, "", weights, device);
      const std::string name = key->substr(0, key->size() - std::string(".weight").size());
      model.lm_head_ = head_loader.linear(ctx, name, config.vocab_size, D, false);
      loader.converted_bytes += head_loader.converted_bytes;
    } else {
      model.lm_head_ = loader.linear(ctx, "embed_tokens", config.vocab_size, D, false);
    }
  }
  model.converted_bytes_ = loader.converted_bytes;
  return model;
}

void QwenTextModel::decoder_layer(Context& ctx, const QwenDecoderLayer& layer, Tensor& x, const Tensor& cos,
                                  const Tensor& sin, const Tensor& key_mask, Tensor* cache_keys, Tensor* cache_values,
                                  int64_t cached) const {
  Workspace& workspace = ctx.workspace(device_);
  auto scope = workspace.scope();
  const int64_t L = x.size(0), D = config_.hidden_size, hd = config_.head_dim;
  const int64_t Hq = config_.num_attention_heads, Hkv = config_.num_key_value_heads;

  // Self-attention block: x += o_proj(attention(rope(q), rope(k), v)).
  Tensor h = workspace.tensor(DType::F32, {L, D});
  ops::rms_norm(ctx, x, &layer.input_layernorm, float(config_.rms_norm_eps), h);
  Tensor q = ops::linear(ctx, h, layer.q_proj).reshape({L, Hq, hd});
  Tensor k = ops::linear(ctx, h, layer.k_proj).reshape({L, Hkv, hd});
  Tensor v = ops::linear(ctx, h, layer.v_proj).reshape({L, Hkv, hd});
  ops::rope_half_split(ctx, q, cos, sin);
  ops::rope_half_split(ctx, k, cos, sin);
  Tensor attended = workspace.tensor(DType::F32, {L, Hq, hd});
  ops::AttentionOptions options;
  options.causal = true;  // with a cache: new query i sees cached keys and new keys up to i
  if (cache_keys != nullptr) {
    copy_rows(cache_keys->slice(0, cached, cached + L), k);
    copy_rows(cache_values->slice(0, cached, cached + L), v);
    k = cache_keys->slice(0, 0, cached + L);
    v = cache_values->slice(0, 0, cached + L);
  } else {
    options.key_mask = &key_mask;
  }
  ops::attention(ctx, q, k, v, attended, options);
  const Tensor o = ops::linear(ctx, attended.reshape({L, Hq * hd}), layer.o_proj);
  ops::add(ctx, x, o, x);

  // MLP block: x += down(silu(gate(h)) * up(h)).
  ops::rms_norm(ctx, x, &layer.post_attention_layernorm, float(config_.rms_norm_eps), h);
  Tensor gate = ops::linear(ctx, h, layer.gate_proj);
  const Tensor up = ops::linear(ctx, h, layer.up_proj);
  ops::swiglu(ctx, gate, up, gate);
  const Tensor down = ops::linear(ctx, gate, layer.down_proj);
  ops::add(ctx, x, down, x);
}

Tensor QwenTextModel::forward(Context& ctx, const std::vector<int32_t>& input_ids,
                              const std::vector<uint8_t>& attention_mask) const {
  const int64_t L = int64_t(input_ids.size());
  K5_CHECK(L > 0, "qwen: input_ids is empty");
  K5_CHECK(attention_mask.empty() || int64_t(attention_mask.size()) == L, "qwen: attention_mask has ",
           attention_mask.size(), " entries, input_ids ", L);

  // The residual stream x [L, D] lives on the model's device from the embeddings (looked up on the host) on.
  Tensor x = embed(input_ids).to_device(device_);
  // Positions arange(L) in all three M-RoPE rows, whatever the mask (as transformers for text-only input).
  Tensor cos, sin;
  rope_tables(config_, text_positions(0, L), L, device_, cos, sin);

  Tensor key_mask = Tensor::empty(DType::U8, {L});
  for (int64_t i = 0; i < L; ++i)
    key_mask.data<uint8_t>()[i] = attention_mask.empty() || attention_mask[size_t(i)] != 0 ? 1 : 0;
  key_mask = key_mask.to_device(device_);

  for (const QwenDecoderLayer& layer : layers_) decoder_layer(ctx, layer, x, cos, sin, key_mask);
  ops::rms_norm(ctx, x, &norm_, float(config_.rms_norm_eps), x);
  return x.to_device(Device::CPU);
}

Tensor QwenTextModel::embed(const std::vector<int32_t>& input_ids) const {
  const int64_t L = int64_t(input_ids.size()), D = config_.hidden_size;
  Tensor x = Tensor::empty(DType::F32, {L, D});
  const size_t row_bytes = size_t(D) * dtype_size(embed_tokens_.dtype());
  for (int64_t i = 0; i < L; ++i) {
    const int32_t id = input_ids[size_t(i)];
    K5_CHECK(id >= 0 && id < config_.vocab_size, "qwen: input_ids[", i, "] = ", id, " is outside the vocabulary [0, ",
             config_.vocab_size, ")");
    convert_to_f32(static_cast<const uint8_t*>(embed_tokens_.raw()) + size_t(id) * row_bytes, embed_tokens_.dtype(),
                   x.data<float>() + i * D, size_t(D));
  }
  return x;
}

Tensor QwenTextModel::forward_cached(Context& ctx, const Tensor& input_embeds, const std::vector<int64_t>& position_ids,
                                     QwenKvCache& cache) const {
  const int64_t D = config_.hidden_size;
  K5_CHECK(input_embeds.dtype() == DType::F32 && input_embeds.dim() == 2 && input_embeds.size(1) == D,
           "qwen: input_embeds is ", input_embeds.describe(), ", expected F32 [L, ", D, "]");
  const int64_t L = input_embeds.size(0);
  K5_CHECK(L > 0, "qwen: no new tokens");
  K5_CHECK(int64_t(position_ids.size()) == 3 * L, "qwen: position_ids has ", position_ids.size(),
           " entries, expected [3, ", L, "]");
  reserve_cache(cache, config_.num_hidden_layers, config_.num_key_value_heads, config_.head_dim, cache.length + L,
                device_);

  // An owned copy on the model's device: the layers update it in place.
  Tensor x = Tensor::empty(DType::F32, {L, D}, device_);
  copy_rows(x, input_embeds.contiguous());
  Tensor cos, sin;
  rope_tables(config_, position_ids, L, device_, cos, sin);
  const Tensor no_mask;
  for (size_t i = 0; i < layers_.size(); ++i)
    decoder_layer(ctx, layers_[i], x, cos, sin, no_mask, &cache.keys[i], &cache.values[i], cache.length);
  cache.length += L;
  ops::rms_norm(ctx, x, &norm_, float(config_.rms_norm_eps), x);
  return x.to_device(Device::CPU);
}

Tensor QwenTextModel::logits(Context& ctx, const Tensor& hidden) const {
  K5_CHECK(has_lm_head(), "qwen: the model was loaded without lm_head (load with with_lm_head = true)");
  K5_CHECK(hidden.dtype() == DType::F32 && hidden.dim() == 2 && hidden.size(1) == config_.hidden_size,
           "qwen: logits of ", hidden.describe(), ", expected F32 [N, ", config_.hidden_size, "]");
  auto scope = ctx.workspace(device_).scope();
  const Tensor logits = ops::linear(ctx, hidden.to_device(device_).contiguous(), lm_head_);  // in the workspace
  return logits.device() == Device::CPU ? logits.clone() : logits.to_device(Device::CPU);
}

}  // namespace k5
