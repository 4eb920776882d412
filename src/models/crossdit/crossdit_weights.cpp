#include "models/crossdit/crossdit_weights.h"

#include <map>
#include <memory>
#include <set>

#include "core/error.h"
#include "ops/linear_int8.h"

namespace k5 {
namespace {

void add_linear(std::vector<std::pair<std::string, Shape>>& out, const std::string& name, int64_t in, int64_t out_dim,
                bool bias = true) {
  out.push_back({name + ".weight", {out_dim, in}});
  if (bias) out.push_back({name + ".bias", {out_dim}});
}

void add_attention(std::vector<std::pair<std::string, Shape>>& out, const std::string& name, int64_t d,
                   int64_t head_dim) {
  add_linear(out, name + ".to_query", d, d);
  add_linear(out, name + ".to_key", d, d);
  add_linear(out, name + ".to_value", d, d);
  out.push_back({name + ".query_norm.weight", {head_dim}});
  out.push_back({name + ".key_norm.weight", {head_dim}});
  add_linear(out, name + ".out_layer", d, d);
}

void add_feed_forward(std::vector<std::pair<std::string, Shape>>& out, const std::string& name, int64_t d,
                      int64_t ff) {
  add_linear(out, name + ".in_layer", d, ff, false);
  add_linear(out, name + ".out_layer", ff, d, false);
}

std::string strip_prefix(const std::string& name) {
  for (const char* prefix : {"transformer.", "model."})
    if (name.rfind(prefix, 0) == 0) return name.substr(std::string(prefix).size());
  return name;
}

// How a loaded tensor is stored for its use: `block_gemm` is a GEMM weight that int8 loading quantises.
enum class Role { gemm, block_gemm, matvec, vector };

class Loader {
 public:
  Loader(const Checkpoint& checkpoint, const DitParams& params, Precision precision, Device device,
         const std::vector<LoraAdapter>& adapters, bool int8_weights)
      : checkpoint_(checkpoint),
        precision_(precision),
        device_(device),
        adapters_(adapters),
        int8_weights_(int8_weights) {
    for (const auto& [name, shape] : crossdit_parameter_shapes(params)) expected_[name] = shape;
    for (const std::string& stored : checkpoint.names()) {
      const std::string name = strip_prefix(stored);
      K5_CHECK(expected_.count(name), checkpoint.path(), ": unknown DiT key '", stored, "'");
      stored_name_[name] = stored;
    }
    for (const auto& [name, shape] : crossdit_parameter_shapes(params))
      K5_CHECK(stored_name_.count(name), checkpoint.path(), ": missing DiT key '", name, "' (expected shape ",
               shape_string(shape), ")");
  }

  Tensor get(const std::string& name, Role role) const {
    const Tensor host = converted(name, role);
    if (device_ == Device::CPU) return host;
    return (role == Role::matvec ? host.to(DType::F32) : host).to_device(device_);
  }

  Tensor converted(const std::string& name, Role role) const {
    Tensor stored = checkpoint_.tensor(stored_name_.at(name));
    const Shape& shape = expected_.at(name);
    K5_CHECK(stored.shape() == shape, checkpoint_.path(), ": DiT key '", name, "' has shape ",
             shape_string(stored.shape()), ", expected ", shape_string(shape));
    K5_CHECK(stored.dtype() == DType::F32 || stored.dtype() == DType::BF16 || stored.dtype() == DType::F16,
             checkpoint_.path(), ": DiT key '", name, "' has dtype ", stored.describe(), ", expected a float type");
    if (role != Role::vector && !adapters_.empty()) {
      const std::string layer = name.substr(0, name.size() - std::string(".weight").size());
      // Merged into an owned copy (the mapped file stays untouched) of the dtype the role stores: GEMM weights in
      // the precision's, matrix-vector ones F32.
      if (lora_adapts(adapters_, layer))
        return merge_lora(cpu_context(), adapters_, layer, stored,
                          role != Role::matvec && precision_ == Precision::bf16 ? DType::BF16 : DType::F32);
    }
    switch (role) {
      case Role::gemm:
      case Role::block_gemm:
        return stored.to(precision_ == Precision::bf16 ? DType::BF16 : DType::F32).contiguous();
      case Role::matvec:
        return stored.dtype() == DType::F16 ? stored.to(DType::F32) : stored.contiguous();
      case Role::vector:
        return stored.to(DType::F32).contiguous();
    }
    return stored;
  }

  ops::LinearLayer linear(const std::string& name, Role role, bool bias = true) const {
    ops::LinearLayer weights;
    if (role == Role::block_gemm && int8_weights_)
      weights.int8 = quantized(name + ".weight");
    else
      weights.weight = get(name + ".weight", role);
    if (bias) weights.bias = get(name + ".bias", Role::vector);
    return weights;
  }

  // Per-output-channel int8 from the weight as stored (or LoRA-merged in float32: what the matvec role reads),
  // quantised on the CPU; the mapped pages it was read from are then dropped, so the process holds the int8
  // copy only.
  ops::Int8Weight quantized(const std::string& name) const {
    const Tensor source = converted(name, Role::matvec);
    ops::Int8Weight weight;
    try {
      weight = ops::quantize_int8(cpu_context(), source);
    } catch (const Error& error) {
      fail(checkpoint_.path(), ": DiT key '", name, "': ", error.what());
    }
    checkpoint_.release_pages(stored_name_.at(name));
    if (device_ != Device::CPU) weight = {weight.values.to_device(device_), weight.scales.to_device(device_)};
    return weight;
  }

  AttentionWeights attention(const std::string& name) const {
    AttentionWeights weights;
    weights.to_query = linear(name + ".to_query", Role::block_gemm);
    weights.to_key = linear(name + ".to_key", Role::block_gemm);
    weights.to_value = linear(name + ".to_value", Role::block_gemm);
    weights.out_layer = linear(name + ".out_layer", Role::block_gemm);
    weights.query_norm = get(name + ".query_norm.weight", Role::vector);
    weights.key_norm = get(name + ".key_norm.weight", Role::vector);
    return weights;
  }

  FeedForwardWeights feed_forward(const std::string& name) const {
    return {linear(name + ".in_layer", Role::block_gemm, false), linear(name + ".out_layer", Role::block_gemm, false)};
  }

 private:
  // The CPU threads of the LoRA products and the quantisation: the caller's --threads (its Context set OpenMP's
  // default).
  Context& cpu_context() const {
    if (!cpu_context_)
      cpu_context_ = std::make_unique<Context>(
          ContextOptions{.threads = default_threads(), .precision = Precision::fp32, .log_level = LogLevel::quiet});
    return *cpu_context_;
  }

  const Checkpoint& checkpoint_;
  Precision precision_;
  Device device_;
  const std::vector<LoraAdapter>& adapters_;
  bool int8_weights_;
  mutable std::unique_ptr<Context> cpu_context_;
  std::map<std::string, Shape> expected_;
  std::map<std::string, std::string> stored_name_;
};

}  // namespace

std::vector<std::pair<std::string, Shape>> crossdit_parameter_shapes(const DitParams& p) {
  K5_CHECK(p.model_dim > 0 && p.head_dim() > 0 && p.model_dim % p.head_dim() == 0,
           "DiT config: model_dim ", p.model_dim, " must be a positive multiple of sum(axes_dims) ", p.head_dim());
  for (int64_t axis : p.axes_dims) K5_CHECK(axis > 0 && axis % 2 == 0, "DiT config: axes_dims must be even");
  const int64_t d = p.model_dim, td = p.time_dim, hd = p.head_dim();
  const int64_t patch = p.patch_size[0] * p.patch_size[1] * p.patch_size[2];
  std::vector<std::pair<std::string, Shape>> out;
  add_linear(out, "time_embeddings.in_layer", d, td);
  add_linear(out, "time_embeddings.out_layer", td, td);
  add_linear(out, "text_embeddings.in_layer", p.in_text_dim, d);
  out.push_back({"text_embeddings.norm.weight", {d}});
  out.push_back({"text_embeddings.norm.bias", {d}});
  add_linear(out, "pooled_text_embeddings.in_layer", p.in_text_dim2, td);
  out.push_back({"pooled_text_embeddings.norm.weight", {td}});
  out.push_back({"pooled_text_embeddings.norm.bias", {td}});
  add_linear(out, "visual_embeddings.in_layer", patch * p.input_channels(), d);
  for (int64_t i = 0; i < p.num_text_blocks; ++i) {
    const std::string block = "text_transformer_blocks." + std::to_string(i);
    add_linear(out, block + ".text_modulation.out_layer", td, 6 * d);
    add_attention(out, block + ".self_attention", d, hd);
    add_feed_forward(out, block + ".feed_forward", d, p.ff_dim);
  }
  for (int64_t i = 0; i < p.num_visual_blocks; ++i) {
    const std::string block = "visual_transformer_blocks." + std::to_string(i);
    add_linear(out, block + ".visual_modulation.out_layer", td, 9 * d);
    add_attention(out, block + ".self_attention", d, hd);
    add_attention(out, block + ".cross_attention", d, hd);
    add_feed_forward(out, block + ".feed_forward", d, p.ff_dim);
  }
  add_linear(out, "out_layer.modulation.out_layer", td, 2 * d);
  add_linear(out, "out_layer.out_layer", d, patch * p.out_visual_dim);
  return out;
}

CrossDitWeights load_crossdit_weights(const Checkpoint& checkpoint, const DitParams& params, Precision precision,
                                      Device device, const std::vector<LoraAdapter>& adapters, bool int8_weights) {
  const Loader load(checkpoint, params, precision, device, adapters, int8_weights);
  CrossDitWeights w;
  w.time_in = load.linear("time_embeddings.in_layer", Role::matvec);
  w.time_out = load.linear("time_embeddings.out_layer", Role::matvec);
  w.text_in = load.linear("text_embeddings.in_layer", Role::gemm);
  w.text_norm_weight = load.get("text_embeddings.norm.weight", Role::vector);
  w.text_norm_bias = load.get("text_embeddings.norm.bias", Role::vector);
  w.pooled_in = load.linear("pooled_text_embeddings.in_layer", Role::matvec);
  w.pooled_norm_weight = load.get("pooled_text_embeddings.norm.weight", Role::vector);
  w.pooled_norm_bias = load.get("pooled_text_embeddings.norm.bias", Role::vector);
  w.visual_in = load.linear("visual_embeddings.in_layer", Role::gemm);
  for (int64_t i = 0; i < params.num_text_blocks; ++i) {
    const std::string block = "text_transformer_blocks." + std::to_string(i);
    EncoderBlockWeights b;
    b.modulation = load.linear(block + ".text_modulation.out_layer", Role::matvec);
    b.self_attention = load.attention(block + ".self_attention");
    b.feed_forward = load.feed_forward(block + ".feed_forward");
    w.text_blocks.push_back(std::move(b));
  }
  for (int64_t i = 0; i < params.num_visual_blocks; ++i) {
    const std::string block = "visual_transformer_blocks." + std::to_string(i);
    DecoderBlockWeights b;
    b.modulation = load.linear(block + ".visual_modulation.out_layer", Role::matvec);
    b.self_attention = load.attention(block + ".self_attention");
    b.cross_attention = load.attention(block + ".cross_attention");
    b.feed_forward = load.feed_forward(block + ".feed_forward");
    w.visual_blocks.push_back(std::move(b));
  }
  w.out_modulation = load.linear("out_layer.modulation.out_layer", Role::matvec);
  w.out_linear = load.linear("out_layer.out_layer", Role::gemm);
  return w;
}

}  // namespace k5
