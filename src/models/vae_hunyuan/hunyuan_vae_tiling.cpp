// The official tiled encode/decode (kandinsky/models/vae.py): tiles overlap and the later tile fades in over
// the earlier one (vae::blend); temporal tiles re-decode one boundary latent frame and drop its output
// frame. Tiles are processed in the official order and blended in place as they arrive, so only the previous
// tile (temporal) or the previous row of tiles (spatial) is kept, never all decoded tiles.
#include <vector>

#include "models/vae_common/tiling.h"
#include "models/vae_hunyuan/hunyuan_vae.h"

namespace k5 {
namespace {

// Python's range(0, stop, step) as a list.
std::vector<int64_t> tile_starts(int64_t stop, int64_t step) {
  K5_CHECK(step >= 1, "VAE tiling: the tile stride must be at least one latent unit");
  std::vector<int64_t> starts;
  for (int64_t i = 0; i < stop; i += step) starts.push_back(i);
  return starts;
}

void check_tiling(const HunyuanTiling& tiling, int spatial, int temporal) {
  K5_CHECK(tiling.sample_height > 0 && tiling.sample_width > 0 && tiling.stride_height > 0 && tiling.stride_width > 0 &&
               tiling.sample_frames > 0 && tiling.stride_frames > 0,
           "VAE tiling: tile sizes and strides must be positive");
  K5_CHECK(tiling.sample_height % spatial == 0 && tiling.sample_width % spatial == 0 &&
               tiling.stride_height % spatial == 0 && tiling.stride_width % spatial == 0,
           "VAE tiling: spatial tile sizes and strides must be multiples of ", spatial);
  K5_CHECK(tiling.sample_frames % temporal == 0 && tiling.stride_frames % temporal == 0,
           "VAE tiling: frame tile size and stride must be multiples of ", temporal);
}

Tensor window(const Tensor& x, int axis, int64_t begin, int64_t length) {
  return x.slice(axis, begin, std::min(begin + length, x.size(axis)));
}

Tensor to_host(const Tensor& x) { return x.to_device(Device::CPU); }

}  // namespace

Tensor HunyuanVae::decode(Context& ctx, const Tensor& latents, const HunyuanTiling& tiling) const {
  K5_CHECK(latents.dim() == 4 && latents.size(0) == config_.latent_channels, "HunyuanVideo VAE decode: latents must be [",
           config_.latent_channels, ", T, H, W], got ", shape_string(latents.shape()));
  HunyuanTiling settled = tiling;
  settled.by_frames = decodes_by_frames(latents.shape(), tiling);
  if (*settled.by_frames) ctx.log().info("vae: decoding frame by frame (bounded memory)");
  return to_host(decode_here(ctx, latents.to_device(device_), settled));
}

Tensor HunyuanVae::decode_here(Context& ctx, const Tensor& latents, const HunyuanTiling& tiling) const {
  if (!tiling.enabled) return run_decoder(ctx, latents, *tiling.by_frames);
  const int spatial = config_.spatial_compression_ratio, temporal = config_.temporal_compression_ratio;
  check_tiling(tiling, spatial, temporal);
  if (latents.size(1) > tiling.sample_frames / temporal + 1) return temporal_tiled_decode(ctx, latents, tiling);
  if (latents.size(3) > tiling.sample_width / spatial || latents.size(2) > tiling.sample_height / spatial) {
    return tiled_decode(ctx, latents, tiling);
  }
  return run_decoder(ctx, latents, *tiling.by_frames);
}

Tensor HunyuanVae::tiled_decode(Context& ctx, const Tensor& latents, const HunyuanTiling& tiling) const {
  const int spatial = config_.spatial_compression_ratio;
  const int64_t height = latents.size(2), width = latents.size(3);
  const int64_t tile_height = tiling.sample_height / spatial, tile_width = tiling.sample_width / spatial;
  const int64_t blend_height = tiling.sample_height - tiling.stride_height;
  const int64_t blend_width = tiling.sample_width - tiling.stride_width;
  const auto rows = tile_starts(height - tile_height + 1, tiling.stride_height / spatial);
  const auto columns = tile_starts(width - tile_width + 1, tiling.stride_width / spatial);
  K5_CHECK(!rows.empty() && !columns.empty(), "HunyuanVideo VAE decode: latents ", shape_string(latents.shape()),
           " are smaller than one ", tile_height, "x", tile_width, " tile");
  std::vector<Tensor> previous_row, result_rows;
  for (size_t i = 0; i < rows.size(); ++i) {
    std::vector<Tensor> row, pieces;
    for (size_t j = 0; j < columns.size(); ++j) {
      const Tensor tile_latents =
          vae::contiguous(ctx, window(window(latents, 2, rows[i], tile_height), 3, columns[j], tile_width));
      Tensor tile = run_decoder(ctx, tile_latents, *tiling.by_frames);
      if (i > 0) vae::blend(ctx, previous_row[j], tile, 2, blend_height);
      if (j > 0) vae::blend(ctx, row[j - 1], tile, 3, blend_width);
      const int64_t height_limit = i + 1 == rows.size() ? tiling.sample_height : tiling.stride_height;
      const int64_t width_limit = j + 1 == columns.size() ? tiling.sample_width : tiling.stride_width;
      pieces.push_back(vae::take_front(vae::take_front(tile, 2, height_limit), 3, width_limit));
      row.push_back(tile);
    }
    result_rows.push_back(vae::concat(ctx, pieces, 3));
    previous_row = std::move(row);
  }
  const Tensor assembled = vae::concat(ctx, result_rows, 2);
  return vae::contiguous(ctx, vae::take_front(vae::take_front(assembled, 2, height * spatial), 3, width * spatial));
}

Tensor HunyuanVae::temporal_tiled_decode(Context& ctx, const Tensor& latents, const HunyuanTiling& tiling) const {
  const int spatial = config_.spatial_compression_ratio, temporal = config_.temporal_compression_ratio;
  const int64_t frames = latents.size(1);
  const int64_t sample_frames = (frames - 1) * temporal + 1;
  const int64_t tile_frames = tiling.sample_frames / temporal;
  const int64_t blend_frames = tiling.sample_frames - tiling.stride_frames;
  const auto starts = tile_starts(frames - tile_frames + 1, tiling.stride_frames / temporal);
  std::vector<Tensor> pieces;
  Tensor previous;
  for (size_t i = 0; i < starts.size(); ++i) {
    const Tensor tile_latents = vae::contiguous(ctx, window(latents, 1, starts[i], tile_frames + 1));
    Tensor tile = tile_latents.size(3) > tiling.sample_width / spatial ||
                          tile_latents.size(2) > tiling.sample_height / spatial
                      ? tiled_decode(ctx, tile_latents, tiling)
                      : run_decoder(ctx, tile_latents, *tiling.by_frames);
    if (i > 0) {
      tile = vae::contiguous(ctx, tile.slice(1, 1, tile.size(1)));
      vae::blend(ctx, previous, tile, 1, blend_frames);
      const int64_t limit = i + 1 == starts.size() ? tiling.sample_frames : tiling.stride_frames;
      pieces.push_back(vae::take_front(tile, 1, limit));
    } else {
      pieces.push_back(vae::take_front(tile, 1, tiling.stride_frames + 1));
    }
    previous = tile;
  }
  return vae::contiguous(ctx, vae::take_front(vae::concat(ctx, pieces, 1), 1, sample_frames));
}

Tensor HunyuanVae::encode_moments(Context& ctx, const Tensor& sample, const HunyuanTiling& tiling) const {
  K5_CHECK(sample.dim() == 4 && sample.size(0) == config_.in_channels, "HunyuanVideo VAE encode: sample must be [",
           config_.in_channels, ", F, H, W], got ", shape_string(sample.shape()));
  const int spatial = config_.spatial_compression_ratio, temporal = config_.temporal_compression_ratio;
  K5_CHECK(sample.size(2) % spatial == 0 && sample.size(3) % spatial == 0 && (sample.size(1) - 1) % temporal == 0,
           "HunyuanVideo VAE encode: sample ", shape_string(sample.shape()), " needs H, W divisible by ", spatial,
           " and F = 1 + ", temporal, " k frames");
  return to_host(encode_here(ctx, sample.to_device(device_), tiling));
}

Tensor HunyuanVae::encode_here(Context& ctx, const Tensor& sample, const HunyuanTiling& tiling) const {
  const int spatial = config_.spatial_compression_ratio, temporal = config_.temporal_compression_ratio;
  if (!tiling.enabled) return run_encoder(ctx, sample);
  check_tiling(tiling, spatial, temporal);
  if (sample.size(1) > tiling.sample_frames + 1) return temporal_tiled_encode(ctx, sample, tiling);
  if (sample.size(3) > tiling.sample_width || sample.size(2) > tiling.sample_height) {
    return tiled_encode(ctx, sample, tiling);
  }
  return run_encoder(ctx, sample);
}

Tensor HunyuanVae::tiled_encode(Context& ctx, const Tensor& sample, const HunyuanTiling& tiling) const {
  const int spatial = config_.spatial_compression_ratio;
  const int64_t height = sample.size(2), width = sample.size(3);
  const int64_t latent_height = height / spatial, latent_width = width / spatial;
  const int64_t tile_height = tiling.sample_height / spatial, tile_width = tiling.sample_width / spatial;
  const int64_t stride_height = tiling.stride_height / spatial, stride_width = tiling.stride_width / spatial;
  const auto rows = tile_starts(height - tiling.sample_height + 1, tiling.stride_height);
  const auto columns = tile_starts(width - tiling.sample_width + 1, tiling.stride_width);
  K5_CHECK(!rows.empty() && !columns.empty(), "HunyuanVideo VAE encode: sample ", shape_string(sample.shape()),
           " is smaller than one ", tiling.sample_height, "x", tiling.sample_width, " tile");
  std::vector<Tensor> previous_row, result_rows;
  for (size_t i = 0; i < rows.size(); ++i) {
    std::vector<Tensor> row, pieces;
    for (size_t j = 0; j < columns.size(); ++j) {
      const Tensor tile_sample =
          vae::contiguous(ctx, window(window(sample, 2, rows[i], tiling.sample_height), 3, columns[j], tiling.sample_width));
      Tensor tile = run_encoder(ctx, tile_sample);
      if (i > 0) vae::blend(ctx, previous_row[j], tile, 2, tile_height - stride_height);
      if (j > 0) vae::blend(ctx, row[j - 1], tile, 3, tile_width - stride_width);
      const int64_t height_limit = i + 1 == rows.size() ? tile_height : stride_height;
      const int64_t width_limit = j + 1 == columns.size() ? tile_width : stride_width;
      pieces.push_back(vae::take_front(vae::take_front(tile, 2, height_limit), 3, width_limit));
      row.push_back(tile);
    }
    result_rows.push_back(vae::concat(ctx, pieces, 3));
    previous_row = std::move(row);
  }
  const Tensor assembled = vae::concat(ctx, result_rows, 2);
  return vae::contiguous(ctx, vae::take_front(vae::take_front(assembled, 2, latent_height), 3, latent_width));
}

Tensor HunyuanVae::temporal_tiled_encode(Context& ctx, const Tensor& sample, const HunyuanTiling& tiling) const {
  const int temporal = config_.temporal_compression_ratio;
  const int64_t frames = sample.size(1);
  const int64_t latent_frames = (frames - 1) / temporal + 1;
  const int64_t tile_frames = tiling.sample_frames / temporal, stride_frames = tiling.stride_frames / temporal;
  const auto starts = tile_starts(frames - tiling.sample_frames + 1, tiling.stride_frames);
  const bool spatial_tiles = sample.size(2) > tiling.sample_height || sample.size(3) > tiling.sample_width;
  std::vector<Tensor> pieces;
  Tensor previous;
  for (size_t i = 0; i < starts.size(); ++i) {
    const Tensor tile_sample = vae::contiguous(ctx, window(sample, 1, starts[i], tiling.sample_frames + 1));
    Tensor tile = spatial_tiles ? tiled_encode(ctx, tile_sample, tiling) : run_encoder(ctx, tile_sample);
    if (i > 0) {
      tile = vae::contiguous(ctx, tile.slice(1, 1, tile.size(1)));
      vae::blend(ctx, previous, tile, 1, tile_frames - stride_frames);
      const int64_t limit = i + 1 == starts.size() ? tile_frames : stride_frames;
      pieces.push_back(vae::take_front(tile, 1, limit));
    } else {
      pieces.push_back(vae::take_front(tile, 1, stride_frames + 1));
    }
    previous = tile;
  }
  return vae::contiguous(ctx, vae::take_front(vae::concat(ctx, pieces, 1), 1, latent_frames));
}

}  // namespace k5
