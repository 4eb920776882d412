#include "models/qwen25vl/vision_model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/workspace.h"
#include "io/json_fields.h"
#include "io/safetensors.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "ops/rope.h"

namespace k5 {

namespace {

constexpr float kNormEps = 1e-6f;  // hard-coded in transformers' vision blocks and merger

// Where the vision tower lives in the checkpoint: transformers 4.x / released files write visual.*,
// transformers 5 writes model.visual.*.
std::string vision_prefix(const Checkpoint& checkpoint) {
  for (const char* prefix : {"model.visual.", "visual."})
    if (checkpoint.contains(std::string(prefix) + "patch_embed.proj.weight")) return prefix;
  fail(checkpoint.path(), ": no Qwen2.5-VL vision tower found (no '[model.]visual.patch_embed.proj.weight' tensor)");
}

class Loader {
 public:
  Loader(const Checkpoint& checkpoint, std::string prefix, DType weights_dtype, Device device)
      : checkpoint_(checkpoint), prefix_(std::move(prefix)), weights_dtype_(weights_dtype), device_(device) {}

  Tensor load(const std::string& name, const Shape& shape, DType dtype) const {
    const std::string key = prefix_ + name;
    K5_CHECK(checkpoint_.contains(key), checkpoint_.path(), ": missing tensor '", key, "'");
    const Tensor tensor = checkpoint_.tensor(key);
    K5_CHECK(tensor.numel() == shape_numel(shape), checkpoint_.path(), ": tensor '", key, "' has shape ",
             shape_string(tensor.shape()), ", expected ", shape_string(shape));
    K5_CHECK(is_floating(tensor.dtype()), checkpoint_.path(), ": tensor '", key, "' has dtype ",
             dtype_name(tensor.dtype()), ", expected a float");
    // The patch embedding is a Conv3d weight [O, C, T, p, p], used as the linear [O, C*T*p*p].
    const Tensor shaped = tensor.reshape(shape);
    const Tensor converted = shaped.dtype() == dtype ? shaped : shaped.to(dtype);
    return device_ == Device::CPU ? converted : converted.to_device(device_);
  }
  Tensor norm(const std::string& name, int64_t size) const { return load(name, {size}, DType::F32); }
  QwenVisionLinear linear(const std::string& name, int64_t out_features, int64_t in_features, bool bias) const {
    QwenVisionLinear layer;
    layer.weight = load(name + ".weight", {out_features, in_features}, weights_dtype_);
    if (bias) layer.bias = load(name + ".bias", {out_features}, DType::F32);
    return layer;
  }

 private:
  const Checkpoint& checkpoint_;
  std::string prefix_;
  DType weights_dtype_;
  Device device_;
};

// The Conv3d weight keeps its 5D shape in the checkpoint; check it before flattening.
void check_patch_embed_shape(const Checkpoint& checkpoint, const std::string& key, const QwenVisionConfig& c) {
  const Shape expected{c.hidden_size, c.in_channels, c.temporal_patch_size, c.patch_size, c.patch_size};
  const Shape found = checkpoint.tensor(key).shape();
  K5_CHECK(found == expected, checkpoint.path(), ": tensor '", key, "' has shape ", shape_string(found), ", expected ",
           shape_string(expected));
}

Tensor apply(Context& ctx, const QwenVisionLinear& layer, const Tensor& x,
             ops::Activation activation = ops::Activation::none) {
  return ops::linear(ctx, x, layer.weight, layer.bias.defined() ? &layer.bias : nullptr, activation);
}

std::string default_config_path(const std::string& checkpoint_path) {
  const std::filesystem::path path(checkpoint_path);
  const auto folder = std::filesystem::is_directory(path) ? path : path.parent_path();
  return (folder / "config.json").string();
}

// RoPE tables cos, sin [N, head_dim/2] for the patches of one image in window order (float32 as transformers
// computes them): the first head_dim/4 angles turn by the patch row, the next head_dim/4 by the column.
void rope_tables(const QwenVisionConfig& config, const QwenGridTHW& grid, const std::vector<int64_t>& unit_order,
                 Tensor& cos, Tensor& sin) {
  const int64_t m = config.spatial_merge_size, quarter = config.head_dim / 4, half = config.head_dim / 2;
  const int64_t units_w = grid.w / m, units_per_frame = grid.h / m * units_w;
  const int64_t N = grid.patches();
  std::vector<float> inv_freq(static_cast<size_t>(quarter));
  for (int64_t i = 0; i < quarter; ++i)
    inv_freq[size_t(i)] = 1.0f / std::pow(float(config.rope_theta), float(2 * i) / float(half));
  cos = Tensor::empty(DType::F32, {N, half});
  sin = Tensor::empty(DType::F32, {N, half});
  for (int64_t u = 0; u < int64_t(unit_order.size()); ++u) {
    const int64_t unit = unit_order[size_t(u)] % units_per_frame;
    for (int64_t k = 0; k < m * m; ++k) {
      const int64_t row = (unit / units_w) * m + k / m, column = (unit % units_w) * m + k % m;
      float* c = cos.data<float>() + (u * m * m + k) * half;
      float* s = sin.data<float>() + (u * m * m + k) * half;
      for (int64_t i = 0; i < half; ++i) {
        const float angle = float(i < quarter ? row : column) * inv_freq[size_t(i % quarter)];
        c[i] = std::cos(angle);
        s[i] = std::sin(angle);
      }
    }
  }
}

}  // namespace

QwenVisionConfig QwenVisionConfig::from_json_file(const std::string& path) {
  const nlohmann::json json = read_json_file(path);
  const JsonFields top(json, path);
  K5_CHECK(top.has("vision_config") && json.at("vision_config").is_object(), path,
           ": no 'vision_config' object (not a Qwen2.5-VL config)");
  const JsonFields vision = top.object("vision_config");
  QwenVisionConfig config;
  config.depth = vision.integer("depth");
  config.hidden_size = vision.integer("hidden_size");
  config.intermediate_size = vision.integer("intermediate_size");
  config.num_heads = vision.integer("num_heads");
  config.out_hidden_size = vision.integer("out_hidden_size");
  config.in_channels = vision.integer("in_channels", vision.integer("in_chans", 3));
  config.patch_size = vision.integer("patch_size", config.patch_size);
  config.spatial_merge_size = vision.integer("spatial_merge_size", config.spatial_merge_size);
  config.temporal_patch_size = vision.integer("temporal_patch_size", config.temporal_patch_size);
  config.window_size = vision.integer("window_size", config.window_size);
  config.fullatt_block_indexes = vision.has("fullatt_block_indexes") ? vision.integers("fullatt_block_indexes")
                                                                     : std::vector<int64_t>{7, 15, 23, 31};
  const std::string act = vision.string("hidden_act", "silu");
  K5_CHECK(act == "silu", vision.source(), ": hidden_act '", act, "' is not supported (only silu)");
  if (vision.has("rope_parameters") && json.at("vision_config").at("rope_parameters").is_object()) {
    const JsonFields rope = vision.object("rope_parameters");
    config.rope_theta = rope.number("rope_theta", config.rope_theta);
    const std::string type = rope.string("rope_type", "axial");
    K5_CHECK(type == "axial" || type == "default", rope.source(), ": unsupported rope_type '", type, "'");
  }
  K5_CHECK(config.depth > 0 && config.hidden_size > 0 && config.intermediate_size > 0 && config.num_heads > 0 &&
               config.out_hidden_size > 0 && config.in_channels > 0 && config.patch_size > 0 &&
               config.spatial_merge_size > 0 && config.temporal_patch_size > 0,
           vision.source(), ": model sizes must be positive");
  K5_CHECK(config.hidden_size % config.num_heads == 0, vision.source(), ": hidden_size ", config.hidden_size,
           " is not a multiple of num_heads ", config.num_heads);
  config.head_dim = config.hidden_size / config.num_heads;
  K5_CHECK(config.head_dim % 4 == 0, vision.source(), ": head_dim ", config.head_dim,
           " must be a multiple of 4 for the 2D RoPE");
  K5_CHECK(config.window_size >= config.patch_size * config.spatial_merge_size, vision.source(), ": window_size ",
           config.window_size, " is smaller than one merge unit (", config.patch_size * config.spatial_merge_size,
           " pixels)");
  for (int64_t index : config.fullatt_block_indexes)
    K5_CHECK(index >= 0 && index < config.depth, vision.source(), ": fullatt_block_indexes holds ", index,
             ", outside [0, ", config.depth, ")");
  return config;
}

QwenVisionWindows qwen_vision_windows(const QwenGridTHW& grid, int64_t merge_size, int64_t window_size,
                                      int64_t patch_size) {
  const int64_t side = window_size / merge_size / patch_size;  // window side in merge units
  K5_CHECK(side > 0, "qwen vision: window_size ", window_size, " holds no merge unit");
  const int64_t units_h = grid.h / merge_size, units_w = grid.w / merge_size;
  const int64_t windows_h = (units_h + side - 1) / side, windows_w = (units_w + side - 1) / side;
  QwenVisionWindows windows;
  windows.window_starts.push_back(0);
  for (int64_t t = 0; t < grid.t; ++t)
    for (int64_t wh = 0; wh < windows_h; ++wh)
      for (int64_t ww = 0; ww < windows_w; ++ww) {
        for (int64_t h = wh * side; h < std::min((wh + 1) * side, units_h); ++h)
          for (int64_t w = ww * side; w < std::min((ww + 1) * side, units_w); ++w)
            windows.unit_order.push_back((t * units_h + h) * units_w + w);
        const int64_t end = int64_t(windows.unit_order.size()) * merge_size * merge_size;
        if (end != windows.window_starts.back()) windows.window_starts.push_back(end);
      }
  return windows;
}

QwenVisionModel QwenVisionModel::load(Context& ctx, const std::string& checkpoint_path, const std::string& config_path,
                                      std::optional<DType> weights_dtype, Device device) {
  const QwenVisionConfig config =
      QwenVisionConfig::from_json_file(config_path.empty() ? default_config_path(checkpoint_path) : config_path);
  const Checkpoint checkpoint = Checkpoint::open(checkpoint_path);
  return load(checkpoint, config, weights_dtype.value_or(ctx.precision() == Precision::fp32 ? DType::F32 : DType::BF16),
              device);
}

QwenVisionModel QwenVisionModel::load(const Checkpoint& checkpoint, const QwenVisionConfig& config, DType weights_dtype,
                                      Device device) {
  K5_CHECK(weights_dtype == DType::F32 || weights_dtype == DType::BF16, "qwen vision: weights must be F32 or BF16");
  const std::string prefix = vision_prefix(checkpoint);
  const Loader loader(checkpoint, prefix, weights_dtype, device);
  const int64_t D = config.hidden_size, F = config.intermediate_size;
  const int64_t merged = D * config.spatial_merge_size * config.spatial_merge_size;
  QwenVisionModel model;
  model.config_ = config;
  model.device_ = device;
  check_patch_embed_shape(checkpoint, prefix + "patch_embed.proj.weight", config);
  model.patch_embed_ = loader.load("patch_embed.proj.weight", {D, config.patch_dim()}, weights_dtype);
  for (int64_t i = 0; i < config.depth; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    QwenVisionBlock block;
    block.norm1 = loader.norm(p + "norm1.weight", D);
    block.norm2 = loader.norm(p + "norm2.weight", D);
    block.qkv = loader.linear(p + "attn.qkv", 3 * D, D, true);
    block.proj = loader.linear(p + "attn.proj", D, D, true);
    block.gate_proj = loader.linear(p + "mlp.gate_proj", F, D, true);
    block.up_proj = loader.linear(p + "mlp.up_proj", F, D, true);
    block.down_proj = loader.linear(p + "mlp.down_proj", D, F, true);
    block.full_attention = std::find(config.fullatt_block_indexes.begin(), config.fullatt_block_indexes.end(), i) !=
                           config.fullatt_block_indexes.end();
    model.blocks_.push_back(std::move(block));
  }
  model.merger_norm_ = loader.norm("merger.ln_q.weight", D);
  model.merger_fc1_ = loader.linear("merger.mlp.0", merged, merged, true);
  model.merger_fc2_ = loader.linear("merger.mlp.2", config.out_hidden_size, merged, true);
  return model;
}

Tensor QwenVisionModel::forward(Context& ctx, const Tensor& pixel_values, const std::vector<QwenGridTHW>& grids) const {
  const int64_t unit = config_.spatial_merge_size * config_.spatial_merge_size;
  K5_CHECK(pixel_values.dtype() == DType::F32 && pixel_values.dim() == 2 && pixel_values.size(1) == config_.patch_dim(),
           "qwen vision: pixel_values is ", pixel_values.describe(), ", expected F32 [patches, ", config_.patch_dim(),
           "]");
  K5_CHECK(!grids.empty(), "qwen vision: no image grids");
  int64_t patches = 0;
  for (const QwenGridTHW& grid : grids) {
    K5_CHECK(grid.t > 0 && grid.h > 0 && grid.w > 0 && grid.h % config_.spatial_merge_size == 0 &&
                 grid.w % config_.spatial_merge_size == 0,
             "qwen vision: image grid ", grid.t, "x", grid.h, "x", grid.w, " is not a positive multiple of merge size ",
             config_.spatial_merge_size);
    patches += grid.patches();
  }
  K5_CHECK(patches == pixel_values.size(0), "qwen vision: the image grids hold ", patches, " patches, pixel_values ",
           pixel_values.size(0));
  const Tensor pixels = pixel_values.contiguous();
  Tensor embeds = Tensor::empty(DType::F32, {patches / unit, config_.out_hidden_size});
  int64_t row = 0;
  for (const QwenGridTHW& grid : grids) {
    const int64_t n = grid.patches();
    forward_image(ctx, pixels.slice(0, row, row + n), grid, embeds.slice(0, row / unit, (row + n) / unit));
    row += n;
  }
  return embeds;
}

void QwenVisionModel::forward_image(Context& ctx, const Tensor& patches, const QwenGridTHW& grid, Tensor out) const {
  auto scope = ctx.workspace(device_).scope();
  const int64_t N = grid.patches(), D = config_.hidden_size;
  const int64_t unit = config_.spatial_merge_size * config_.spatial_merge_size;
  const QwenVisionWindows windows =
      qwen_vision_windows(grid, config_.spatial_merge_size, config_.window_size, config_.patch_size);

  // patches [N, patch_dim] -> x [N, D], merge units in window order: the patch rows are put in that order on the
  // host first (the embedding is row by row), then go to the model's device.
  Tensor ordered = Tensor::empty(DType::F32, patches.shape());
  for (int64_t u = 0; u < N / unit; ++u) {
    const int64_t source = windows.unit_order[size_t(u)];
    ordered.slice(0, u * unit, (u + 1) * unit).copy_from(patches.slice(0, source * unit, (source + 1) * unit));
  }
  Tensor x = ops::linear(ctx, device_ == Device::CPU ? ordered : ordered.to_device(device_), patch_embed_);
  Tensor cos, sin;
  rope_tables(config_, grid, windows.unit_order, cos, sin);
  if (device_ != Device::CPU) {
    cos = cos.to_device(device_);
    sin = sin.to_device(device_);
  }

  const std::vector<int64_t> whole_image{0, N};
  for (const QwenVisionBlock& b : blocks_)
    block(ctx, b, x, cos, sin, b.full_attention ? whole_image : windows.window_starts);

  // Merger: [N, D] -> [N / unit, unit * D] -> [N / unit, out_hidden_size], then back to the image's unit order.
  ops::rms_norm(ctx, x, &merger_norm_, kNormEps, x);
  const Tensor hidden = apply(ctx, merger_fc1_, x.reshape({N / unit, unit * D}), ops::Activation::gelu_erf);
  const Tensor merged = apply(ctx, merger_fc2_, hidden).to_device(Device::CPU);
  for (int64_t u = 0; u < N / unit; ++u) out.select(0, windows.unit_order[size_t(u)]).copy_from(merged.select(0, u));
}

void QwenVisionModel::block(Context& ctx, const QwenVisionBlock& b, Tensor& x, const Tensor& cos, const Tensor& sin,
                            const std::vector<int64_t>& window_starts) const {
  Workspace& workspace = ctx.workspace(device_);
  auto scope = workspace.scope();
  const int64_t N = x.size(0), D = config_.hidden_size, H = config_.num_heads, hd = config_.head_dim;

  // Attention: x += proj(attention within each window of (rope(q), rope(k), v)).
  Tensor h = workspace.tensor(DType::F32, {N, D});
  ops::rms_norm(ctx, x, &b.norm1, kNormEps, h);
  const Tensor qkv = apply(ctx, b.qkv, h).reshape({N, 3, H, hd});
  Tensor q = qkv.select(1, 0), k = qkv.select(1, 1);
  const Tensor v = qkv.select(1, 2);
  ops::rope_half_split(ctx, q, cos, sin);
  ops::rope_half_split(ctx, k, cos, sin);
  Tensor attended = workspace.tensor(DType::F32, {N, H, hd});
  for (size_t w = 0; w + 1 < window_starts.size(); ++w) {
    const int64_t begin = window_starts[w], end = window_starts[w + 1];
    Tensor window_out = attended.slice(0, begin, end);
    ops::attention(ctx, q.slice(0, begin, end), k.slice(0, begin, end), v.slice(0, begin, end), window_out);
  }
  ops::add(ctx, x, apply(ctx, b.proj, attended.reshape({N, D})), x);

  // MLP: x += down(silu(gate(h)) * up(h)).
  ops::rms_norm(ctx, x, &b.norm2, kNormEps, h);
  Tensor gate = apply(ctx, b.gate_proj, h);
  ops::swiglu(ctx, gate, apply(ctx, b.up_proj, h), gate);
  ops::add(ctx, x, apply(ctx, b.down_proj, gate), x);
}

}  // namespace k5
