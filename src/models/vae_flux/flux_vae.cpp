#include "models/vae_flux/flux_vae.h"

#include "io/json_fields.h"
#include "models/vae_common/tiling.h"

namespace k5 {
namespace {

using vae::ConvStyle;

// Tiles start every `step` along an axis of `size` (Python range(0, size, step)).
std::vector<int64_t> every(int64_t size, int64_t step) {
  K5_CHECK(step >= 1, "FLUX VAE tiling: the tile overlap leaves no stride");
  std::vector<int64_t> starts;
  for (int64_t i = 0; i < size; i += step) starts.push_back(i);
  return starts;
}

// diffusers' tiled_decode / _tiled_encode: x [C, 1, H, W] split into tile x tile windows every `step`;
// each result tile fades into the one above and to the left, then is cut to `limit` x `limit`.
template <typename Run>
Tensor tiled(Context& ctx, const Tensor& x, int64_t tile, int64_t step, int64_t blend_extent, int64_t limit, const Run& run) {
  const auto rows = every(x.size(2), step), columns = every(x.size(3), step);
  std::vector<Tensor> previous_row, result_rows;
  for (size_t i = 0; i < rows.size(); ++i) {
    std::vector<Tensor> row, pieces;
    for (size_t j = 0; j < columns.size(); ++j) {
      const Tensor window = vae::contiguous(ctx, x.slice(2, rows[i], std::min(rows[i] + tile, x.size(2)))
                                                     .slice(3, columns[j], std::min(columns[j] + tile, x.size(3))));
      Tensor result = run(window);
      if (i > 0) vae::blend(ctx, previous_row[j], result, 2, blend_extent);
      if (j > 0) vae::blend(ctx, row[j - 1], result, 3, blend_extent);
      pieces.push_back(vae::take_front(vae::take_front(result, 2, limit), 3, limit));
      row.push_back(result);
    }
    result_rows.push_back(vae::concat(ctx, pieces, 3));
    previous_row = std::move(row);
  }
  return vae::concat(ctx, result_rows, 2);
}

}  // namespace

FluxVaeConfig FluxVaeConfig::from_json_file(const std::string& path) {
  const nlohmann::json json = read_json_file(path);
  const JsonFields fields(json, path);
  FluxVaeConfig config;
  config.in_channels = fields.integer("in_channels", config.in_channels);
  config.out_channels = fields.integer("out_channels", config.out_channels);
  config.latent_channels = fields.integer("latent_channels", config.latent_channels);
  if (fields.has("block_out_channels")) config.block_out_channels = fields.integers("block_out_channels");
  config.layers_per_block = int(fields.integer("layers_per_block", config.layers_per_block));
  config.norm_num_groups = int(fields.integer("norm_num_groups", config.norm_num_groups));
  config.sample_size = fields.integer("sample_size", config.sample_size);
  config.scaling_factor = fields.number("scaling_factor", config.scaling_factor);
  config.shift_factor = fields.number("shift_factor", config.shift_factor);
  config.use_quant_conv = fields.boolean("use_quant_conv", true);  // diffusers' default is true
  config.use_post_quant_conv = fields.boolean("use_post_quant_conv", true);
  config.mid_block_add_attention = fields.boolean("mid_block_add_attention", true);
  const std::string act_fn = fields.string("act_fn", "silu");
  K5_CHECK(act_fn == "silu" || act_fn == "swish", path, ": act_fn '", act_fn, "' is not supported (silu)");
  for (const char* key : {"down_block_types", "up_block_types"}) {
    if (!fields.has(key)) continue;
    for (const std::string& type : fields.strings(key)) {
      K5_CHECK(type == "DownEncoderBlock2D" || type == "UpDecoderBlock2D", path, ": ", key, " entry '", type,
               "' is not supported");
    }
    K5_CHECK(fields.strings(key).size() == config.block_out_channels.size(), path, ": ", key,
             " must have one entry per block_out_channels entry");
  }
  K5_CHECK(!config.block_out_channels.empty() && config.layers_per_block >= 1 && config.norm_num_groups >= 1, path,
           ": block_out_channels, layers_per_block and norm_num_groups must be non-empty / positive");
  return config;
}

FluxVae::FluxVae(const FluxVaeConfig& config, const Checkpoint& checkpoint, bool with_encoder, bool with_decoder,
                 Device device)
    : config_(config), device_(device) {
  const vae::WeightReader weights(checkpoint, device);
  const auto& channels = config_.block_out_channels;
  const int groups = config_.norm_num_groups;
  const int64_t latent = config_.latent_channels, blocks = int64_t(channels.size());
  if (with_decoder) {
    if (config_.use_post_quant_conv) {
      post_quant_conv_ = vae::load_conv(weights, "post_quant_conv.", latent, latent, {1, 1, 1}, 4);
    }
    Coder decoder;
    decoder.conv_in = vae::load_conv(weights, "decoder.conv_in.", latent, channels.back(), {1, 3, 3}, 4);
    decoder.mid_block = vae::load_mid_block(weights, "decoder.mid_block.", channels.back(), groups,
                                            config_.mid_block_add_attention, ConvStyle::image);
    int64_t output_channels = channels.back();
    for (int64_t i = 0; i < blocks; ++i) {
      const int64_t input_channels = output_channels;
      output_channels = channels[size_t(blocks - 1 - i)];
      const std::string prefix = "decoder.up_blocks." + std::to_string(i) + ".";
      Resampled block;
      for (int j = 0; j < config_.layers_per_block + 1; ++j) {
        block.resnets.push_back(vae::load_resnet(weights, prefix + "resnets." + std::to_string(j) + ".",
                                                 j == 0 ? input_channels : output_channels, output_channels, groups,
                                                 ConvStyle::image));
      }
      if (i + 1 < blocks) {
        block.upsampler = vae::make_upsample_conv(
            vae::load_conv(weights, prefix + "upsamplers.0.conv.", output_channels, output_channels, {1, 3, 3}, 4), 1, 2,
            ConvStyle::image);
      }
      decoder.blocks.push_back(std::move(block));
    }
    decoder.conv_norm_out = vae::load_group_norm(weights, "decoder.conv_norm_out.", channels.front(), groups, 1e-6f);
    decoder.conv_out = vae::load_conv(weights, "decoder.conv_out.", channels.front(), config_.out_channels, {1, 3, 3}, 4);
    decoder_ = std::move(decoder);
  }
  if (with_encoder) {
    if (config_.use_quant_conv) {
      quant_conv_ = vae::load_conv(weights, "quant_conv.", 2 * latent, 2 * latent, {1, 1, 1}, 4);
    }
    Coder encoder;
    encoder.conv_in = vae::load_conv(weights, "encoder.conv_in.", config_.in_channels, channels.front(), {1, 3, 3}, 4);
    int64_t output_channels = channels.front();
    for (int64_t i = 0; i < blocks; ++i) {
      const int64_t input_channels = output_channels;
      output_channels = channels[size_t(i)];
      const std::string prefix = "encoder.down_blocks." + std::to_string(i) + ".";
      Resampled block;
      for (int j = 0; j < config_.layers_per_block; ++j) {
        block.resnets.push_back(vae::load_resnet(weights, prefix + "resnets." + std::to_string(j) + ".",
                                                 j == 0 ? input_channels : output_channels, output_channels, groups,
                                                 ConvStyle::image));
      }
      if (i + 1 < blocks) {
        block.downsampler = vae::load_conv(weights, prefix + "downsamplers.0.conv.", output_channels,
                                           output_channels, {1, 3, 3}, 4);
      }
      encoder.blocks.push_back(std::move(block));
    }
    encoder.mid_block = vae::load_mid_block(weights, "encoder.mid_block.", channels.back(), groups,
                                            config_.mid_block_add_attention, ConvStyle::image);
    encoder.conv_norm_out = vae::load_group_norm(weights, "encoder.conv_norm_out.", channels.back(), groups, 1e-6f);
    encoder.conv_out = vae::load_conv(weights, "encoder.conv_out.", channels.back(), 2 * latent, {1, 3, 3}, 4);
    encoder_ = std::move(encoder);
  }
}

Tensor FluxVae::run_decoder(Context& ctx, const Tensor& latents) const {
  K5_CHECK(decoder_, "FLUX VAE: the decoder was not loaded");
  Tensor hidden = vae::contiguous(ctx, latents);
  if (post_quant_conv_) hidden = vae::conv_forward(ctx, *post_quant_conv_, hidden, ConvStyle::image);
  hidden = vae::conv_forward(ctx, decoder_->conv_in, hidden, ConvStyle::image);
  hidden = vae::mid_block_forward(ctx, decoder_->mid_block, hidden, ConvStyle::image);
  for (const Resampled& block : decoder_->blocks) {
    for (const vae::ResnetBlock& resnet : block.resnets) hidden = vae::resnet_forward(ctx, resnet, hidden, ConvStyle::image);
    if (block.upsampler) hidden = vae::upsample_conv_forward(ctx, *block.upsampler, hidden);
  }
  hidden = vae::group_norm_forward(ctx, decoder_->conv_norm_out, hidden, /*silu=*/true);
  return vae::conv_forward(ctx, decoder_->conv_out, hidden, ConvStyle::image);
}

Tensor FluxVae::run_encoder(Context& ctx, const Tensor& image) const {
  K5_CHECK(encoder_, "FLUX VAE: the encoder was not loaded");
  Tensor hidden = vae::conv_forward(ctx, encoder_->conv_in, vae::contiguous(ctx, image), ConvStyle::image);
  for (const Resampled& block : encoder_->blocks) {
    for (const vae::ResnetBlock& resnet : block.resnets) hidden = vae::resnet_forward(ctx, resnet, hidden, ConvStyle::image);
    if (block.downsampler) {
      // Downsample2D(padding=0): zero-pad one column right and one row below, then a stride-2 3x3 conv.
      ops::ConvGeometry geometry;
      geometry.stride = {1, 2, 2};
      geometry.pad_after = {0, 1, 1};
      hidden = vae::conv_forward(ctx, *block.downsampler, hidden, geometry);
    }
  }
  hidden = vae::mid_block_forward(ctx, encoder_->mid_block, hidden, ConvStyle::image);
  hidden = vae::group_norm_forward(ctx, encoder_->conv_norm_out, hidden, /*silu=*/true);
  hidden = vae::conv_forward(ctx, encoder_->conv_out, hidden, ConvStyle::image);
  if (quant_conv_) hidden = vae::conv_forward(ctx, *quant_conv_, hidden, ConvStyle::image);
  return hidden;
}

Tensor FluxVae::decode(Context& ctx, const Tensor& latents, const FluxTiling& tiling) const {
  K5_CHECK(latents.dim() == 3 && latents.size(0) == config_.latent_channels, "FLUX VAE decode: latents must be [",
           config_.latent_channels, ", H, W], got ", shape_string(latents.shape()));
  const Tensor x = latents.to_device(device_).unsqueeze(1);  // contiguous on the model's device
  const int64_t sample_tile = tiling.sample_size > 0 ? tiling.sample_size : config_.sample_size;
  const int64_t latent_tile = sample_tile / downscale();
  Tensor image;
  if (tiling.enabled && (x.size(3) > latent_tile || x.size(2) > latent_tile)) {
    const int64_t step = int64_t(double(latent_tile) * (1.0 - tiling.overlap_factor));
    const int64_t blend_extent = int64_t(double(sample_tile) * tiling.overlap_factor);
    image = tiled(ctx, x, latent_tile, step, blend_extent, sample_tile - blend_extent,
                  [&](const Tensor& tile) { return run_decoder(ctx, tile); });
  } else {
    image = run_decoder(ctx, x);
  }
  return image.select(1, 0).to_device(Device::CPU).contiguous();
}

Tensor FluxVae::encode_moments(Context& ctx, const Tensor& image, const FluxTiling& tiling) const {
  K5_CHECK(image.dim() == 3 && image.size(0) == config_.in_channels, "FLUX VAE encode: image must be [",
           config_.in_channels, ", H, W], got ", shape_string(image.shape()));
  K5_CHECK(image.size(1) % downscale() == 0 && image.size(2) % downscale() == 0, "FLUX VAE encode: image ",
           shape_string(image.shape()), " needs H and W divisible by ", downscale());
  const Tensor x = image.to_device(device_).unsqueeze(1);
  const int64_t sample_tile = tiling.sample_size > 0 ? tiling.sample_size : config_.sample_size;
  const int64_t latent_tile = sample_tile / downscale();
  Tensor moments;
  if (tiling.enabled && (x.size(3) > sample_tile || x.size(2) > sample_tile)) {
    const int64_t step = int64_t(double(sample_tile) * (1.0 - tiling.overlap_factor));
    const int64_t blend_extent = int64_t(double(latent_tile) * tiling.overlap_factor);
    moments = tiled(ctx, x, sample_tile, step, blend_extent, latent_tile - blend_extent,
                    [&](const Tensor& tile) { return run_encoder(ctx, tile); });
  } else {
    moments = run_encoder(ctx, x);
  }
  return moments.select(1, 0).to_device(Device::CPU).contiguous();
}

}  // namespace k5
