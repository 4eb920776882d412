// HunyuanVideo causal 3D VAE (diffusers AutoencoderKLHunyuanVideo weights), run as the official Kandinsky 5
// `kandinsky/models/vae.py` runs it, including its tiling. Differences of the official copy from diffusers
// that matter here: tiling is on by default and the tile sizes come from `get_{enc,dec}_optimal_tiling`
// (17-frame sample tiles with an 8-frame stride, spatial tiles sized from the free GPU memory) instead of
// diffusers' fixed 256/192 px and 16/12 frames; a spatially tiled temporal tile is decided on the latent
// (decode) or sample (encode) size of the tile. The layer maths is the same.
//
// Activations are one batch item: latents [C, T, H, W] <-> video [3, 1 + 4 (T - 1), 8 H, 8 W].
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "models/vae_common/vae_blocks.h"

namespace k5 {

struct HunyuanVaeConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 16;
  std::vector<int64_t> block_out_channels{128, 256, 512, 512};
  int layers_per_block = 2;
  int norm_num_groups = 32;
  double scaling_factor = 0.476986;  // applied by the pipeline, not by encode/decode
  int spatial_compression_ratio = 8;
  int temporal_compression_ratio = 4;
  bool mid_block_add_attention = true;

  // Hugging Face config.json of AutoencoderKLHunyuanVideo; unknown activation or block types are errors.
  static HunyuanVaeConfig from_json_file(const std::string& path);
};

// Tile sizes in sample (pixel / frame) units, as the official apply_tiling sets them.
struct HunyuanTiling {
  bool enabled = true;           // false: one pass over the whole input
  int64_t sample_height = 256;   // tile_sample_min_height
  int64_t sample_width = 256;
  int64_t stride_height = 192;   // tile_sample_stride_height
  int64_t stride_width = 192;
  int64_t sample_frames = 16;    // tile_sample_min_num_frames (a tile holds one more frame)
  int64_t stride_frames = 8;     // tile_sample_stride_num_frames
  // Decode each tile frame by frame (models/vae_common/frame_streaming.h): memory ~ two full-resolution
  // activations of a tile instead of all of them, for ~1.6x the convolution work; the same result up to float
  // rounding. nullopt: when a whole tile would need more than 3/4 of the memory available on the model's
  // device (decodes_by_frames); set, on either device.
  // The encoder always runs whole.
  std::optional<bool> by_frames;

  // The official get_enc_optimal_tiling for a sample of height x width pixels, given the free accelerator
  // memory it would see (the default is an idle 80 GB H100; the official code asks CUDA).
  static HunyuanTiling official(int64_t height, int64_t width, double free_memory_bytes = 80.0 * (1ull << 30));
};

class HunyuanVae {
 public:
  // `weights` holds the diffusers key names ("encoder.…", "decoder.…", "quant_conv.…", "post_quant_conv.…").
  // On Device::CUDA the weights are uploaded once and decode / encode run on the GPU, tiling and blending
  // included; their inputs and results stay host tensors (copied over and back).
  HunyuanVae(const HunyuanVaeConfig& config, const Checkpoint& weights, bool with_encoder, bool with_decoder,
             Device device = Device::CPU);

  const HunyuanVaeConfig& config() const { return config_; }
  Device device() const { return device_; }

  // latents [C, T, H, W] -> sample [3, 1 + 4 (T - 1), 8 H, 8 W] (unclamped), the official `decode`.
  Tensor decode(Context& ctx, const Tensor& latents, const HunyuanTiling& tiling) const;
  // Activation bytes a whole (not by-frames) decode of the largest tile of `latents` [C, T, H, W] under
  // `tiling` holds at its peak, from measurements: ~48 bytes x block_out_channels[0] per output pixel-frame.
  int64_t whole_tile_decode_bytes(const Shape& latents, const HunyuanTiling& tiling) const;
  // Whether decode() goes frame by frame: tiling.by_frames, or when unset, whether a whole tile would need
  // more than 3/4 of the memory available now on the model's device (host RAM, or the GPU's free memory: the
  // default tiling is the one the official code picks on an idle 80 GB card, so on a smaller card a whole
  // tile of a 768x512 video, ~40 GB, would not fit).
  bool decodes_by_frames(const Shape& latents, const HunyuanTiling& tiling) const;

  // sample [3, F, H, W] -> moments [2 C, 1 + (F - 1) / 4, H / 8, W / 8]: mean then logvar (unclamped),
  // the official `_encode` (DiagonalGaussianDistribution clamps logvar to [-30, 20] afterwards).
  Tensor encode_moments(Context& ctx, const Tensor& sample, const HunyuanTiling& tiling) const;

 private:
  struct UpBlock {
    std::vector<vae::ResnetBlock> resnets;
    std::optional<vae::UpsampleConv> upsampler;  // causal: the first frame is upsampled in space only
    int factor_t = 1, factor_hw = 1;
  };
  struct DownBlock {
    std::vector<vae::ResnetBlock> resnets;
    std::optional<vae::Conv> downsampler;
    int stride_t = 1, stride_hw = 1;
  };
  struct Decoder {
    vae::Conv conv_in;
    vae::MidBlock mid_block;
    std::vector<UpBlock> up_blocks;
    vae::GroupNorm conv_norm_out;
    vae::Conv conv_out;
  };
  struct Encoder {
    vae::Conv conv_in;
    std::vector<DownBlock> down_blocks;
    vae::MidBlock mid_block;
    vae::GroupNorm conv_norm_out;
    vae::Conv conv_out;
  };

  void load_decoder(const vae::WeightReader& weights);
  void load_encoder(const vae::WeightReader& weights);
  Tensor run_decoder(Context& ctx, const Tensor& latents, bool by_frames) const;  // post_quant_conv + decoder
  Tensor run_encoder(Context& ctx, const Tensor& sample) const;   // encoder + quant_conv
  // The decode / encode of an input already on the model's device (tiling settled; by_frames set).
  Tensor decode_here(Context& ctx, const Tensor& latents, const HunyuanTiling& tiling) const;
  Tensor encode_here(Context& ctx, const Tensor& sample, const HunyuanTiling& tiling) const;
  Tensor tiled_decode(Context& ctx, const Tensor& latents, const HunyuanTiling& tiling) const;
  Tensor temporal_tiled_decode(Context& ctx, const Tensor& latents, const HunyuanTiling& tiling) const;
  Tensor tiled_encode(Context& ctx, const Tensor& sample, const HunyuanTiling& tiling) const;
  Tensor temporal_tiled_encode(Context& ctx, const Tensor& sample, const HunyuanTiling& tiling) const;

  HunyuanVaeConfig config_;
  std::optional<Decoder> decoder_;
  std::optional<Encoder> encoder_;
  vae::Conv post_quant_conv_, quant_conv_;
  Device device_ = Device::CPU;
};

}  // namespace k5
