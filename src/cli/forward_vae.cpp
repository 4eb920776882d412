// `k5 forward vae-decode` / `k5 forward vae-encode`: the HunyuanVideo or FLUX VAE on tensors from a
// safetensors file, in the diffusers layouts:
//   decode  IN latents [B, C, T, H, W] (flux: [B, C, H, W]) -> OUT sample [B, 3, T', H', W'] (flux: [B, 3, H', W']),
//           before clamping;
//   encode  IN sample  [B, 3, F, H, W] (flux: [B, 3, H, W]) -> OUT latent_mean, latent_logvar (logvar clamped to
//           [-30, 20] as DiagonalGaussianDistribution does).
// Tiling (hunyuan): on by default with the official get_*_optimal_tiling sizes (17-frame tiles, stride 8;
// spatial tiles only when the official formula asks for them, see --free-memory-gb); --no-tile runs one pass.
// FLUX: untiled by default (as the official pipelines run it); --tile uses diffusers' tiling.
// --device cuda runs the VAE on the GPU (weights uploaded once; tiling and blending on the device).
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>

#include "cli/command.h"
#include "core/context.h"
#include "io/safetensors.h"
#include "models/vae_flux/flux_vae.h"
#include "models/vae_hunyuan/hunyuan_vae.h"

namespace k5::cli {
namespace {

struct VaeOptions {
  ContextOptions context;
  std::string vae = "hunyuan";
  std::string config;
  std::string weights;
  std::string inputs;
  std::string output;
  bool tile = false, no_tile = false;
  std::optional<bool> tiling() const {
    return tile ? std::optional<bool>(true) : no_tile ? std::optional<bool>(false) : std::nullopt;
  }
  int64_t tile_height = 0, tile_width = 0, tile_stride_height = 0, tile_stride_width = 0;
  int64_t tile_frames = 0, tile_stride_frames = 0;
  double free_memory_gb = 80.0;
  std::string by_frames = "auto";
};

void add_vae_options(CLI::App& app, VaeOptions& o) {
  // The VAEs compute in float32; --precision bf16 (the default) lets the GPU's convolutions multiply in TF32.
  add_context_options(app, o.context);
  app.add_option("--vae", o.vae, "hunyuan (video) or flux (image)")->check(CLI::IsMember({"hunyuan", "flux"}));
  app.add_option("--config", o.config, "the VAE's Hugging Face config.json (default: config.json beside --weights)");
  app.add_option("--weights", o.weights, "diffusion_pytorch_model.safetensors or its folder")->required();
  app.add_option("--inputs", o.inputs, "input .safetensors")->required();
  app.add_option("--output", o.output, "output .safetensors")->required();
  auto* tile = app.add_flag("--tile", o.tile, "tiled (the default for hunyuan)");
  app.add_flag("--no-tile", o.no_tile, "one pass over the whole input (the default for flux)")->excludes(tile);
  app.add_option("--tile-height", o.tile_height, "hunyuan: tile height in pixels; flux: tile size in pixels");
  app.add_option("--tile-width", o.tile_width, "hunyuan: tile width in pixels");
  app.add_option("--tile-stride-height", o.tile_stride_height, "hunyuan: tile stride in pixels");
  app.add_option("--tile-stride-width", o.tile_stride_width, "hunyuan: tile stride in pixels");
  app.add_option("--tile-frames", o.tile_frames, "hunyuan: frames per temporal tile minus one (official 16)");
  app.add_option("--tile-stride-frames", o.tile_stride_frames, "hunyuan: temporal tile stride (official 8)");
  app.add_option("--free-memory-gb", o.free_memory_gb,
                 "hunyuan: the free accelerator memory the official tiling formula assumes (default 80)");
  app.add_option(
         "--by-frames", o.by_frames,
         "hunyuan decode frame by frame: bounded memory, ~1.6x the convolution work; auto (default: when a whole tile "
         "would need over 3/4 of the free RAM, or GPU memory on the GPU), on or off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
}

std::string config_path(const VaeOptions& o) {
  if (!o.config.empty()) return o.config;
  const std::filesystem::path weights(o.weights);
  const auto folder = std::filesystem::is_directory(weights) ? weights : weights.parent_path();
  return (folder / "config.json").string();
}

Tensor read_input(const std::string& path, const std::string& name, int dims) {
  const auto file = SafetensorsFile::open(path);
  K5_CHECK(file->contains(name), path, ": missing input tensor '", name, "'");
  const Tensor stored = file->tensor(name);
  K5_CHECK(stored.dim() == dims, path, ": '", name, "' must have ", dims, " dims, got ", stored.describe());
  K5_CHECK(stored.size(0) >= 1, path, ": '", name, "' has an empty batch");
  Tensor f32 = Tensor::empty(DType::F32, stored.shape());
  f32.copy_from(stored);
  return f32;
}

HunyuanTiling hunyuan_tiling(const VaeOptions& o, int64_t height, int64_t width) {
  HunyuanTiling tiling = HunyuanTiling::official(height, width, o.free_memory_gb * double(1ull << 30));
  tiling.enabled = o.tiling().value_or(true);
  if (o.tile_height > 0) tiling.sample_height = o.tile_height;
  if (o.tile_width > 0) tiling.sample_width = o.tile_width;
  if (o.tile_stride_height > 0) tiling.stride_height = o.tile_stride_height;
  if (o.tile_stride_width > 0) tiling.stride_width = o.tile_stride_width;
  if (o.tile_frames > 0) tiling.sample_frames = o.tile_frames;
  if (o.tile_stride_frames > 0) tiling.stride_frames = o.tile_stride_frames;
  return tiling;
}

FluxTiling flux_tiling(const VaeOptions& o) {
  FluxTiling tiling;
  tiling.enabled = o.tiling().value_or(false);
  tiling.sample_size = o.tile_height;
  return tiling;
}

// Runs `per_item` on each batch item and stacks the results along a new batch axis.
template <typename Fn>
Tensor over_batch(Context& ctx, const Tensor& batch, const Fn& per_item) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<Tensor> results;
  for (int64_t b = 0; b < batch.size(0); ++b) {
    Tensor item = Tensor::empty(DType::F32, Shape(batch.shape().begin() + 1, batch.shape().end()));
    item.copy_from(batch.select(0, b));
    results.push_back(per_item(item));
  }
  Shape shape = results.front().shape();
  shape.insert(shape.begin(), batch.size(0));
  Tensor out = Tensor::empty(DType::F32, shape);
  for (int64_t b = 0; b < batch.size(0); ++b) out.select(0, b).copy_from(results[size_t(b)]);
  ctx.log().info("vae: ", shape_string(batch.shape()), " -> ", shape_string(out.shape()), " in ",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), " s");
  return out;
}

// VAE activations are tens to thousands of MB and are freed and re-allocated layer after layer; glibc would
// return each to the kernel (munmap) and fault it back in zeroed pages, which cost ~8% of a decode. Keep
// freed memory in the heap for reuse instead (this process runs only this command).
void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, -1);
}

int run_decode(const VaeOptions& o) {
  Context ctx(o.context);
  Tensor sample;
  if (o.vae == "hunyuan") {
    // The weights are copied to F32 at load; the mapped file is not needed after that.
    const HunyuanVae vae(HunyuanVaeConfig::from_json_file(config_path(o)), Checkpoint::open(o.weights), false, true,
                         ctx.device());
    const Tensor latents = read_input(o.inputs, "latents", 5);
    const int spatial = vae.config().spatial_compression_ratio;
    HunyuanTiling tiling = hunyuan_tiling(o, latents.size(3) * spatial, latents.size(4) * spatial);
    tiling.by_frames = parse_auto_on_off(o.by_frames);
    tiling.by_frames = vae.decodes_by_frames(Shape(latents.shape().begin() + 1, latents.shape().end()), tiling);
    // Frame by frame, memory is the point: freed frames go back to the system instead of the heap.
    if (!*tiling.by_frames) keep_freed_memory();
    sample = over_batch(ctx, latents, [&](const Tensor& z) { return vae.decode(ctx, z, tiling); });
  } else {
    keep_freed_memory();
    const FluxVae vae(FluxVaeConfig::from_json_file(config_path(o)), Checkpoint::open(o.weights), false, true,
                      ctx.device());
    const Tensor latents = read_input(o.inputs, "latents", 4);
    sample = over_batch(ctx, latents, [&](const Tensor& z) { return vae.decode(ctx, z, flux_tiling(o)); });
  }
  save_safetensors(o.output, {{"sample", sample}});
  return 0;
}

int run_encode(const VaeOptions& o) {
  keep_freed_memory();
  Context ctx(o.context);
  const Checkpoint weights = Checkpoint::open(o.weights);
  Tensor moments;
  int64_t latent_channels = 0;
  if (o.vae == "hunyuan") {
    const HunyuanVae vae(HunyuanVaeConfig::from_json_file(config_path(o)), weights, true, false, ctx.device());
    const Tensor sample = read_input(o.inputs, "sample", 5);
    const HunyuanTiling tiling = hunyuan_tiling(o, sample.size(3), sample.size(4));
    moments = over_batch(ctx, sample, [&](const Tensor& x) { return vae.encode_moments(ctx, x, tiling); });
    latent_channels = vae.config().latent_channels;
  } else {
    const FluxVae vae(FluxVaeConfig::from_json_file(config_path(o)), weights, true, false, ctx.device());
    const Tensor sample = read_input(o.inputs, "sample", 4);
    moments = over_batch(ctx, sample, [&](const Tensor& x) { return vae.encode_moments(ctx, x, flux_tiling(o)); });
    latent_channels = vae.config().latent_channels;
  }
  const Tensor mean = moments.slice(1, 0, latent_channels).contiguous();
  std::vector<float> logvar = moments.slice(1, latent_channels, 2 * latent_channels).contiguous().to_f32_vector();
  for (float& v : logvar) v = std::clamp(v, -30.0f, 20.0f);
  Shape logvar_shape = mean.shape();
  save_safetensors(o.output, {{"latent_mean", mean}, {"latent_logvar", Tensor::from_f32(logvar, logvar_shape)}});
  return 0;
}

}  // namespace

K5_COMMAND("forward vae-decode", "VAE decode: latents -> sample (hunyuan video or flux image)",
           [](CLI::App& app) -> std::function<int()> {
             auto options = std::make_shared<VaeOptions>();
             add_vae_options(app, *options);
             return [options]() { return run_decode(*options); };
           });

K5_COMMAND("forward vae-encode", "VAE encode: sample -> latent_mean, latent_logvar (hunyuan video or flux image)",
           [](CLI::App& app) -> std::function<int()> {
             auto options = std::make_shared<VaeOptions>();
             add_vae_options(app, *options);
             return [options]() { return run_encode(*options); };
           });

}  // namespace k5::cli
