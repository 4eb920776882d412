// FLUX.1 VAE: diffusers AutoencoderKL (2D; GroupNorm/SiLU resnets, single-head mid attention), as the
// official Kandinsky 5 image pipelines use it: untiled by default (the official code never enables tiling);
// diffusers' tiled_decode / _tiled_encode (sample_size tiles, 25% overlap) are available on request.
// Activations are one image, [C, H, W]; internally [C, 1, H, W] so the 3D conv op serves both VAEs.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "models/vae_common/vae_blocks.h"

namespace k5 {

struct FluxVaeConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 16;
  std::vector<int64_t> block_out_channels{128, 256, 512, 512};
  int layers_per_block = 2;
  int norm_num_groups = 32;
  int64_t sample_size = 1024;      // diffusers' tile size in pixels
  double scaling_factor = 0.3611;  // the pipeline divides latents by this (the official code applies no shift)
  double shift_factor = 0.1159;    // present in the config, unused by the official Kandinsky code
  bool use_quant_conv = false;
  bool use_post_quant_conv = false;
  bool mid_block_add_attention = true;

  static FluxVaeConfig from_json_file(const std::string& path);
};

struct FluxTiling {
  bool enabled = false;
  int64_t sample_size = 0;  // 0 = the config's sample_size
  double overlap_factor = 0.25;
};

class FluxVae {
 public:
  // On Device::CUDA the weights are uploaded once and decode / encode run on the GPU (tiling included); their
  // inputs and results stay host tensors (copied over and back).
  FluxVae(const FluxVaeConfig& config, const Checkpoint& weights, bool with_encoder, bool with_decoder,
          Device device = Device::CPU);
  const FluxVaeConfig& config() const { return config_; }
  Device device() const { return device_; }

  // latents [C, H, W] -> image [3, 8 H, 8 W] (unclamped).
  Tensor decode(Context& ctx, const Tensor& latents, const FluxTiling& tiling) const;
  // image [3, H, W] -> moments [2 C, H / 8, W / 8]: mean then logvar (unclamped).
  Tensor encode_moments(Context& ctx, const Tensor& image, const FluxTiling& tiling) const;

 private:
  struct Resampled {
    std::vector<vae::ResnetBlock> resnets;
    std::optional<vae::Conv> downsampler;       // Downsample2D conv (encoder)
    std::optional<vae::UpsampleConv> upsampler;  // Upsample2D: nearest x2 + conv (decoder)
  };
  struct Coder {
    vae::Conv conv_in;
    std::vector<Resampled> blocks;
    vae::MidBlock mid_block;
    vae::GroupNorm conv_norm_out;
    vae::Conv conv_out;
  };

  Tensor run_decoder(Context& ctx, const Tensor& latents) const;  // [C, 1, h, w] -> [3, 1, H, W]
  Tensor run_encoder(Context& ctx, const Tensor& image) const;    // [3, 1, H, W] -> [2C, 1, h, w]
  int64_t downscale() const { return int64_t(1) << (config_.block_out_channels.size() - 1); }

  FluxVaeConfig config_;
  std::optional<Coder> decoder_, encoder_;
  std::optional<vae::Conv> quant_conv_, post_quant_conv_;
  Device device_ = Device::CPU;
};

}  // namespace k5
