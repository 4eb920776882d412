#include "models/vae_hunyuan/hunyuan_vae.h"

#include <cmath>

#include "core/system_memory.h"
#include "io/json_fields.h"
#include "models/vae_common/frame_streaming.h"
#include "models/vae_common/tiling.h"

namespace k5 {
namespace {

using vae::ConvStyle;

int exact_log2(int value, const char* what) {
  int log = 0;
  while ((1 << log) < value) ++log;
  K5_CHECK(value >= 1 && (1 << log) == value, "HunyuanVideo VAE config: ", what, " must be a power of two, got ",
           value);
  return log;
}

// The official block plan (HunyuanVideoEncoder3D / Decoder3D with temporal ratio 4): block i resamples space
// while i < log2(spatial ratio), and time when i >= blocks - 1 - log2(temporal ratio), never in the last block.
struct Resampling {
  bool space = false, time = false;
};
Resampling block_resampling(const HunyuanVaeConfig& config, size_t block) {
  const int blocks = int(config.block_out_channels.size());
  const int space_layers = exact_log2(config.spatial_compression_ratio, "spatial_compression_ratio");
  const int time_layers = exact_log2(config.temporal_compression_ratio, "temporal_compression_ratio");
  const bool last = int(block) == blocks - 1;
  return {int(block) < space_layers, int(block) >= blocks - 1 - time_layers && !last};
}

}  // namespace

HunyuanVaeConfig HunyuanVaeConfig::from_json_file(const std::string& path) {
  const nlohmann::json json = read_json_file(path);
  const JsonFields fields(json, path);
  HunyuanVaeConfig config;
  config.in_channels = fields.integer("in_channels", config.in_channels);
  config.out_channels = fields.integer("out_channels", config.out_channels);
  config.latent_channels = fields.integer("latent_channels", config.latent_channels);
  if (fields.has("block_out_channels")) config.block_out_channels = fields.integers("block_out_channels");
  config.layers_per_block = int(fields.integer("layers_per_block", config.layers_per_block));
  config.norm_num_groups = int(fields.integer("norm_num_groups", config.norm_num_groups));
  config.scaling_factor = fields.number("scaling_factor", config.scaling_factor);
  config.spatial_compression_ratio = int(fields.integer("spatial_compression_ratio", config.spatial_compression_ratio));
  config.temporal_compression_ratio =
      int(fields.integer("temporal_compression_ratio", config.temporal_compression_ratio));
  config.mid_block_add_attention = fields.boolean("mid_block_add_attention", config.mid_block_add_attention);
  const std::string act_fn = fields.string("act_fn", "silu");
  K5_CHECK(act_fn == "silu" || act_fn == "swish", path, ": act_fn '", act_fn, "' is not supported (silu)");
  for (const char* key : {"down_block_types", "up_block_types"}) {
    if (!fields.has(key)) continue;
    for (const std::string& type : fields.strings(key)) {
      K5_CHECK(type == "HunyuanVideoDownBlock3D" || type == "HunyuanVideoUpBlock3D", path, ": ", key, " entry '",
               type, "' is not supported");
    }
    K5_CHECK(fields.strings(key).size() == config.block_out_channels.size(), path, ": ", key,
             " must have one entry per block_out_channels entry");
  }
  K5_CHECK(!config.block_out_channels.empty(), path, ": block_out_channels is empty");
  K5_CHECK(config.temporal_compression_ratio == 4, path, ": temporal_compression_ratio ",
           config.temporal_compression_ratio, " is not supported (the decoder is built for 4)");
  K5_CHECK(config.layers_per_block >= 1 && config.norm_num_groups >= 1 && config.latent_channels >= 1, path,
           ": layers_per_block, norm_num_groups and latent_channels must be positive");
  return config;
}

HunyuanTiling HunyuanTiling::official(int64_t height, int64_t width, double free_memory_bytes) {
  const double max_area = free_memory_bytes / 256 / 17 / 8;
  const double values = 256.0 * 17.0 * double(height + 32) * double(width + 32);
  const double limit = 2147483648.0;
  HunyuanTiling tiling;
  tiling.sample_frames = 16;
  tiling.stride_frames = 8;
  tiling.sample_height = tiling.stride_height = height;
  tiling.sample_width = tiling.stride_width = width;
  if (double(height * width) < max_area && values < limit) return tiling;
  const double aspect = std::max(double(height) / double(width), double(width) / double(height));
  const double tiles = std::max(std::ceil(double(height * width) / max_area), std::ceil(values / limit));
  const int64_t a = int64_t(std::ceil(std::sqrt(tiles / aspect))), b = int64_t(std::ceil(std::sqrt(tiles * aspect)));
  const int64_t width_tiles = height >= width ? a : b, height_tiles = height >= width ? b : a;
  if (width_tiles > 1) {
    tiling.sample_width = int64_t(std::ceil(double(width) / double(width_tiles) / 8.0)) * 8 + 16;
    tiling.stride_width = tiling.sample_width - 32;
  }
  if (height_tiles > 1) {
    tiling.sample_height = int64_t(std::ceil(double(height) / double(height_tiles) / 8.0)) * 8 + 16;
    tiling.stride_height = tiling.sample_height - 32;
  }
  return tiling;
}

int64_t HunyuanVae::whole_tile_decode_bytes(const Shape& latents, const HunyuanTiling& tiling) const {
  K5_CHECK(latents.size() == 4, "HunyuanVideo VAE: latents must be [C, T, H, W], got ", shape_string(latents));
  const int spatial = config_.spatial_compression_ratio, temporal = config_.temporal_compression_ratio;
  int64_t frames = 1 + temporal * (latents[1] - 1), height = spatial * latents[2], width = spatial * latents[3];
  if (tiling.enabled) {
    frames = std::min(frames, tiling.sample_frames + 1);
    if (height > tiling.sample_height || width > tiling.sample_width) {
      height = std::min(height, tiling.sample_height);
      width = std::min(width, tiling.sample_width);
    }
  }
  return 48 * config_.block_out_channels.front() * frames * height * width;
}

bool HunyuanVae::decodes_by_frames(const Shape& latents, const HunyuanTiling& tiling) const {
  if (tiling.by_frames) return *tiling.by_frames;
  const int64_t available = available_memory_bytes(device_);
  return available > 0 && whole_tile_decode_bytes(latents, tiling) > available / 4 * 3;
}

HunyuanVae::HunyuanVae(const HunyuanVaeConfig& config, const Checkpoint& weights, bool with_encoder,
                       bool with_decoder, Device device)
    : config_(config), device_(device) {
  const vae::WeightReader reader(weights, device);
  if (with_decoder) load_decoder(reader);
  if (with_encoder) load_encoder(reader);
}

void HunyuanVae::load_decoder(const vae::WeightReader& weights) {
  const auto& channels = config_.block_out_channels;
  const int groups = config_.norm_num_groups;
  const int64_t latent = config_.latent_channels;
  post_quant_conv_ = vae::load_conv(weights, "post_quant_conv.", latent, latent, {1, 1, 1}, 5);
  Decoder decoder;
  decoder.conv_in = vae::load_conv(weights, "decoder.conv_in.conv.", latent, channels.back(), {3, 3, 3}, 5);
  decoder.mid_block = vae::load_mid_block(weights, "decoder.mid_block.", channels.back(), groups,
                                          config_.mid_block_add_attention, ConvStyle::causal);
  int64_t output_channels = channels.back();
  for (size_t i = 0; i < channels.size(); ++i) {
    const int64_t input_channels = output_channels;
    output_channels = channels[channels.size() - 1 - i];
    const std::string prefix = "decoder.up_blocks." + std::to_string(i) + ".";
    UpBlock block;
    for (int j = 0; j < config_.layers_per_block + 1; ++j) {
      block.resnets.push_back(vae::load_resnet(weights, prefix + "resnets." + std::to_string(j) + ".",
                                               j == 0 ? input_channels : output_channels, output_channels, groups,
                                               ConvStyle::causal));
    }
    const Resampling resampling = block_resampling(config_, i);
    if (resampling.space || resampling.time) {
      block.factor_t = resampling.time ? 2 : 1;
      block.factor_hw = resampling.space ? 2 : 1;
      block.upsampler = vae::make_upsample_conv(vae::load_conv(weights, prefix + "upsamplers.0.conv.conv.",
                                                               output_channels, output_channels, {3, 3, 3}, 5),
                                                block.factor_t, block.factor_hw, ConvStyle::causal);
    }
    decoder.up_blocks.push_back(std::move(block));
  }
  decoder.conv_norm_out = vae::load_group_norm(weights, "decoder.conv_norm_out.", channels.front(), groups, 1e-6f);
  decoder.conv_out =
      vae::load_conv(weights, "decoder.conv_out.conv.", channels.front(), config_.out_channels, {3, 3, 3}, 5);
  decoder_ = std::move(decoder);
}

void HunyuanVae::load_encoder(const vae::WeightReader& weights) {
  const auto& channels = config_.block_out_channels;
  const int groups = config_.norm_num_groups;
  const int64_t moments = 2 * config_.latent_channels;
  quant_conv_ = vae::load_conv(weights, "quant_conv.", moments, moments, {1, 1, 1}, 5);
  Encoder encoder;
  encoder.conv_in = vae::load_conv(weights, "encoder.conv_in.conv.", config_.in_channels, channels.front(),
                                   {3, 3, 3}, 5);
  int64_t output_channels = channels.front();
  for (size_t i = 0; i < channels.size(); ++i) {
    const int64_t input_channels = output_channels;
    output_channels = channels[i];
    const std::string prefix = "encoder.down_blocks." + std::to_string(i) + ".";
    DownBlock block;
    for (int j = 0; j < config_.layers_per_block; ++j) {
      block.resnets.push_back(vae::load_resnet(weights, prefix + "resnets." + std::to_string(j) + ".",
                                               j == 0 ? input_channels : output_channels, output_channels, groups,
                                               ConvStyle::causal));
    }
    const Resampling resampling = block_resampling(config_, i);
    if (resampling.space || resampling.time) {
      block.downsampler = vae::load_conv(weights, prefix + "downsamplers.0.conv.conv.", output_channels,
                                         output_channels, {3, 3, 3}, 5);
      block.stride_t = resampling.time ? 2 : 1;
      block.stride_hw = resampling.space ? 2 : 1;
    }
    encoder.down_blocks.push_back(std::move(block));
  }
  encoder.mid_block = vae::load_mid_block(weights, "encoder.mid_block.", channels.back(), groups,
                                          config_.mid_block_add_attention, ConvStyle::causal);
  encoder.conv_norm_out = vae::load_group_norm(weights, "encoder.conv_norm_out.", channels.back(), groups, 1e-6f);
  encoder.conv_out = vae::load_conv(weights, "encoder.conv_out.conv.", channels.back(), moments, {3, 3, 3}, 5);
  encoder_ = std::move(encoder);
}

Tensor HunyuanVae::run_decoder(Context& ctx, const Tensor& latents, bool by_frames) const {
  K5_CHECK(decoder_, "HunyuanVideo VAE: the decoder was not loaded");
  // latents: [C, T, H, W] -> [3, 1 + 4 (T - 1), 8 H, 8 W]
  Tensor hidden = vae::conv_forward(ctx, post_quant_conv_, vae::contiguous(ctx, latents), ConvStyle::image);
  hidden = vae::conv_forward(ctx, decoder_->conv_in, hidden, ConvStyle::causal);
  hidden = vae::mid_block_forward(ctx, decoder_->mid_block, hidden, ConvStyle::causal);
  if (by_frames) {
    // The mid-block (with its attention over all frames) runs whole at the latent resolution; the up blocks
    // go frame by frame, each upsampler's output recomputed by the next resnet instead of stored.
    auto stored = std::make_unique<vae::StoredFrames>(ctx, hidden);
    hidden = Tensor();
    std::unique_ptr<vae::UpsampledFrames> upsampled;  // the previous block's upsampler output, never stored
    const auto current = [&]() -> vae::FrameSource& {
      return upsampled ? static_cast<vae::FrameSource&>(*upsampled) : *stored;
    };
    for (const UpBlock& block : decoder_->up_blocks) {
      for (const vae::ResnetBlock& resnet : block.resnets) {
        auto output = vae::resnet_by_frames(ctx, resnet, current());
        upsampled.reset();
        stored = std::move(output);
      }
      if (block.upsampler) upsampled = std::make_unique<vae::UpsampledFrames>(*block.upsampler, std::move(stored));
    }
    return vae::norm_conv_by_frames(ctx, decoder_->conv_norm_out, decoder_->conv_out, current());
  }
  for (const UpBlock& block : decoder_->up_blocks) {
    for (const vae::ResnetBlock& resnet : block.resnets) hidden = vae::resnet_forward(ctx, resnet, hidden, ConvStyle::causal);
    if (block.upsampler) hidden = vae::upsample_conv_forward(ctx, *block.upsampler, hidden);
  }
  hidden = vae::group_norm_forward(ctx, decoder_->conv_norm_out, hidden, /*silu=*/true);
  return vae::conv_forward(ctx, decoder_->conv_out, hidden, ConvStyle::causal);
}

Tensor HunyuanVae::run_encoder(Context& ctx, const Tensor& sample) const {
  K5_CHECK(encoder_, "HunyuanVideo VAE: the encoder was not loaded");
  // sample: [3, F, H, W] -> moments [2 C, 1 + (F - 1) / 4, H / 8, W / 8]
  Tensor hidden = vae::conv_forward(ctx, encoder_->conv_in, vae::contiguous(ctx, sample), ConvStyle::causal);
  for (const DownBlock& block : encoder_->down_blocks) {
    for (const vae::ResnetBlock& resnet : block.resnets) hidden = vae::resnet_forward(ctx, resnet, hidden, ConvStyle::causal);
    if (block.downsampler) {
      hidden = vae::conv_forward(ctx, *block.downsampler, hidden, ConvStyle::causal,
                                 {block.stride_t, block.stride_hw, block.stride_hw});
    }
  }
  hidden = vae::mid_block_forward(ctx, encoder_->mid_block, hidden, ConvStyle::causal);
  hidden = vae::group_norm_forward(ctx, encoder_->conv_norm_out, hidden, /*silu=*/true);
  hidden = vae::conv_forward(ctx, encoder_->conv_out, hidden, ConvStyle::causal);
  return vae::conv_forward(ctx, quant_conv_, hidden, ConvStyle::image);
}

}  // namespace k5
