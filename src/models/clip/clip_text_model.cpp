#include "models/clip/clip_text_model.h"

#include <cmath>
#include <filesystem>

#include "io/json_fields.h"
#include "io/safetensors.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/linear.h"
#include "ops/norm.h"

namespace k5 {

ClipTextConfig ClipTextConfig::from_json_file(const std::string& path) {
  const nlohmann::json json = read_json_file(path);
  const JsonFields top(json, path);
  const bool nested = top.has("text_config") && json.at("text_config").is_object();
  const JsonFields text = nested ? top.object("text_config") : top;
  ClipTextConfig c;
  c.vocab_size = text.integer("vocab_size", c.vocab_size);
  c.hidden_size = text.integer("hidden_size", c.hidden_size);
  c.intermediate_size = text.integer("intermediate_size", c.intermediate_size);
  c.num_hidden_layers = text.integer("num_hidden_layers", c.num_hidden_layers);
  c.num_attention_heads = text.integer("num_attention_heads", c.num_attention_heads);
  c.max_position_embeddings = text.integer("max_position_embeddings", c.max_position_embeddings);
  c.layer_norm_eps = text.number("layer_norm_eps", c.layer_norm_eps);
  c.hidden_act = text.string("hidden_act", c.hidden_act);
  c.eos_token_id = text.integer("eos_token_id", c.eos_token_id);
  K5_CHECK(c.hidden_act == "quick_gelu" || c.hidden_act == "gelu", path, ": unsupported hidden_act '", c.hidden_act,
           "'");
  K5_CHECK(c.vocab_size > 0 && c.hidden_size > 0 && c.intermediate_size > 0 && c.num_hidden_layers > 0 &&
               c.num_attention_heads > 0 && c.max_position_embeddings > 0,
           path, ": model sizes must be positive");
  K5_CHECK(c.hidden_size % c.num_attention_heads == 0, path, ": hidden_size ", c.hidden_size,
           " is not a multiple of num_attention_heads ", c.num_attention_heads);
  return c;
}

namespace {

std::string text_model_prefix(const Checkpoint& checkpoint) {
  for (const char* prefix : {"text_model.", ""})
    if (checkpoint.contains(std::string(prefix) + "embeddings.token_embedding.weight")) return prefix;
  fail(checkpoint.path(), ": no CLIP text model found (no 'text_model.embeddings.token_embedding.weight' tensor)");
}

Tensor stored(const Checkpoint& checkpoint, const std::string& key, const Shape& shape) {
  K5_CHECK(checkpoint.contains(key), checkpoint.path(), ": missing tensor '", key, "'");
  Tensor tensor = checkpoint.tensor(key);
  K5_CHECK(tensor.shape() == shape, checkpoint.path(), ": tensor '", key, "' has shape ", shape_string(tensor.shape()),
           ", expected ", shape_string(shape));
  K5_CHECK(is_floating(tensor.dtype()) && tensor.dtype() != DType::F8_E4M3, checkpoint.path(), ": tensor '", key,
           "' has dtype ", dtype_name(tensor.dtype()), ", expected F32/BF16/F16");
  return tensor;
}

Tensor as_f32(const Tensor& tensor) { return tensor.dtype() == DType::F32 ? tensor : tensor.to(DType::F32); }

}  // namespace

ClipTextModel ClipTextModel::load(Context& ctx, const std::string& checkpoint_path, const std::string& config_path,
                                  Device device) {
  std::string config_file = config_path;
  if (config_file.empty()) {
    const std::filesystem::path path(checkpoint_path);
    config_file = ((std::filesystem::is_directory(path) ? path : path.parent_path()) / "config.json").string();
  }
  return load(ctx, Checkpoint::open(checkpoint_path), ClipTextConfig::from_json_file(config_file), device);
}

ClipTextModel ClipTextModel::load(Context& ctx, const Checkpoint& checkpoint, const ClipTextConfig& config,
                                  Device device) {
  ClipTextModel model;
  model.config_ = config;
  model.device_ = device;
  const std::string prefix = text_model_prefix(checkpoint);
  const int64_t D = config.hidden_size, F = config.intermediate_size;
  const DType weight_dtype = ctx.precision() == Precision::fp32 ? DType::F32 : DType::BF16;
  auto linear = [&](const std::string& name, int64_t out_features, int64_t in_features) {
    Linear layer;
    const Tensor weight = stored(checkpoint, prefix + name + ".weight", {out_features, in_features});
    layer.weight = (weight.dtype() == weight_dtype ? weight : weight.to(weight_dtype)).to_device(device);
    layer.bias = as_f32(stored(checkpoint, prefix + name + ".bias", {out_features})).to_device(device);
    return layer;
  };
  auto vector = [&](const std::string& name) {
    return as_f32(stored(checkpoint, prefix + name, {D})).to_device(device);
  };
  model.token_embedding_ = stored(checkpoint, prefix + "embeddings.token_embedding.weight", {config.vocab_size, D});
  model.position_embedding_ =
      as_f32(stored(checkpoint, prefix + "embeddings.position_embedding.weight", {config.max_position_embeddings, D}))
          .to_device(device);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string p = "encoder.layers." + std::to_string(i) + ".";
    Layer layer;
    layer.layer_norm1_weight = vector(p + "layer_norm1.weight");
    layer.layer_norm1_bias = vector(p + "layer_norm1.bias");
    layer.layer_norm2_weight = vector(p + "layer_norm2.weight");
    layer.layer_norm2_bias = vector(p + "layer_norm2.bias");
    layer.q_proj = linear(p + "self_attn.q_proj", D, D);
    layer.k_proj = linear(p + "self_attn.k_proj", D, D);
    layer.v_proj = linear(p + "self_attn.v_proj", D, D);
    layer.out_proj = linear(p + "self_attn.out_proj", D, D);
    layer.fc1 = linear(p + "mlp.fc1", F, D);
    layer.fc2 = linear(p + "mlp.fc2", D, F);
    model.layers_.push_back(std::move(layer));
  }
  model.final_layer_norm_weight_ = vector("final_layer_norm.weight");
  model.final_layer_norm_bias_ = vector("final_layer_norm.bias");
  return model;
}

ClipTextOutput ClipTextModel::forward(Context& ctx, const std::vector<int32_t>& input_ids,
                                      const std::vector<uint8_t>& attention_mask) const {
  const int64_t L = int64_t(input_ids.size()), D = config_.hidden_size;
  const int64_t H = config_.num_attention_heads, hd = D / H;
  K5_CHECK(L > 0 && L <= config_.max_position_embeddings, "clip: input_ids has ", L, " tokens, expected 1 to ",
           config_.max_position_embeddings);
  K5_CHECK(attention_mask.empty() || int64_t(attention_mask.size()) == L, "clip: attention_mask has ",
           attention_mask.size(), " entries, input_ids ", L);

  // Embeddings: token rows (looked up in the host table) uploaded, plus position rows [L, D].
  Tensor tokens = Tensor::empty(DType::F32, {L, D});
  const size_t row_bytes = size_t(D) * dtype_size(token_embedding_.dtype());
  for (int64_t i = 0; i < L; ++i) {
    const int32_t id = input_ids[size_t(i)];
    K5_CHECK(id >= 0 && id < config_.vocab_size, "clip: input_ids[", i, "] = ", id, " is outside the vocabulary [0, ",
             config_.vocab_size, ")");
    convert_to_f32(static_cast<const uint8_t*>(token_embedding_.raw()) + size_t(id) * row_bytes,
                   token_embedding_.dtype(), tokens.data<float>() + i * D, size_t(D));
  }
  Tensor x = tokens.to_device(device_);  // the residual stream, owned
  ops::add(ctx, x, position_embedding_.slice(0, 0, L), x);
  Tensor key_mask = Tensor::empty(DType::U8, {L});
  for (int64_t i = 0; i < L; ++i)
    key_mask.data<uint8_t>()[i] = attention_mask.empty() || attention_mask[size_t(i)] != 0 ? 1 : 0;
  key_mask = key_mask.to_device(device_);

  const float eps = float(config_.layer_norm_eps);
  const ops::Activation activation =
      config_.hidden_act == "quick_gelu" ? ops::Activation::quick_gelu : ops::Activation::gelu_erf;
  Workspace& workspace = ctx.workspace(device_);
  for (const Layer& layer : layers_) {
    auto scope = workspace.scope();
    Tensor h = workspace.tensor(DType::F32, {L, D});
    ops::layer_norm(ctx, x, &layer.layer_norm1_weight, &layer.layer_norm1_bias, eps, h);
    const Tensor q = ops::linear(ctx, h, layer.q_proj.weight, &layer.q_proj.bias).reshape({L, H, hd});
    const Tensor k = ops::linear(ctx, h, layer.k_proj.weight, &layer.k_proj.bias).reshape({L, H, hd});
    const Tensor v = ops::linear(ctx, h, layer.v_proj.weight, &layer.v_proj.bias).reshape({L, H, hd});
    Tensor attended = workspace.tensor(DType::F32, {L, H, hd});
    ops::AttentionOptions options;
    options.causal = true;
    options.key_mask = &key_mask;
    ops::attention(ctx, q, k, v, attended, options);
    const Tensor o = ops::linear(ctx, attended.reshape({L, D}), layer.out_proj.weight, &layer.out_proj.bias);
    ops::add(ctx, x, o, x);
    ops::layer_norm(ctx, x, &layer.layer_norm2_weight, &layer.layer_norm2_bias, eps, h);
    const Tensor mlp = ops::linear(ctx, h, layer.fc1.weight, &layer.fc1.bias, activation);
    const Tensor out = ops::linear(ctx, mlp, layer.fc2.weight, &layer.fc2.bias);
    ops::add(ctx, x, out, x);
  }
  ops::layer_norm(ctx, x, &final_layer_norm_weight_, &final_layer_norm_bias_, eps, x);

  // The EOS position, by transformers' rule for this config.
  int64_t eos = 0;
  if (config_.eos_token_id == 2) {
    for (int64_t i = 1; i < L; ++i)
      if (input_ids[size_t(i)] > input_ids[size_t(eos)]) eos = i;
  } else {
    for (int64_t i = 0; i < L; ++i)
      if (input_ids[size_t(i)] == config_.eos_token_id) {
        eos = i;
        break;
      }
  }
  ClipTextOutput output;
  output.last_hidden_state = x.to_device(Device::CPU);
  output.pooler_output = output.last_hidden_state.select(0, eos).clone();
  return output;
}

}  // namespace k5
