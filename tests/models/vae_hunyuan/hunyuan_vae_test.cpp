// HunyuanVideo VAE vs the official kandinsky/models/vae.py on a tiny random-weight config
// (tools/golden/vae.py): untiled and tiled (temporal + spatial tiles), decode and encode.
#include <gtest/gtest.h>

#include "models/vae_hunyuan/hunyuan_vae_checks.h"

namespace k5 {
namespace {

using test::HunyuanDecode;
using test::HunyuanGolden;

// The fp32 VAE on the CPU, with its encoder or its decoder.
struct CpuVae {
  enum Part { encoder, decoder };
  explicit CpuVae(Part part) : vae(golden.config, golden.weights, part == encoder, part == decoder) {}
  HunyuanGolden golden;
  Context ctx{{.threads = 2, .precision = Precision::fp32}};
  HunyuanVae vae;
};

TEST(HunyuanVae, DecodeUntiledMatchesOfficial) {
  CpuVae d(CpuVae::decoder);
  test::check_hunyuan_decode(d.ctx, d.vae, d.golden, HunyuanDecode::untiled);
}

TEST(HunyuanVae, DecodeSingleFrameMatchesOfficial) {
  CpuVae d(CpuVae::decoder);
  test::check_hunyuan_decode(d.ctx, d.vae, d.golden, HunyuanDecode::single_frame);
}

TEST(HunyuanVae, DecodeTiledMatchesOfficial) {
  CpuVae d(CpuVae::decoder);
  test::check_hunyuan_decode(d.ctx, d.vae, d.golden, HunyuanDecode::tiled);
}

TEST(HunyuanVae, DecodeByFramesMatchesOfficial) {
  CpuVae d(CpuVae::decoder);
  test::check_hunyuan_decodes_by_frames(d.ctx, d.vae, d.golden);
}

TEST(HunyuanVae, WholeTileDecodeEstimate) {
  HunyuanGolden golden;
  HunyuanVae vae(golden.config, golden.weights, false, true);
  const HunyuanTiling untiled = HunyuanGolden::untiled();
  // latents [4, 3, 4, 4] -> 9 frames of 16x16; the small tiles cap a tile at 9 frames of 16x16 too.
  EXPECT_EQ(vae.whole_tile_decode_bytes({4, 3, 4, 4}, untiled), 48 * 8 * 9 * 16 * 16);
  EXPECT_EQ(vae.whole_tile_decode_bytes({4, 5, 8, 8}, HunyuanGolden::small_tiles()), 48 * 8 * 9 * 16 * 16);
}

TEST(HunyuanVae, EncodeUntiledMatchesOfficial) {
  CpuVae e(CpuVae::encoder);
  test::check_hunyuan_encode(e.ctx, e.vae, e.golden, false);
}

TEST(HunyuanVae, EncodeTiledMatchesOfficial) {
  CpuVae e(CpuVae::encoder);
  test::check_hunyuan_encode(e.ctx, e.vae, e.golden, true);
}

TEST(HunyuanVae, OfficialTilingFormula) {
  // 768x512 on an idle 80 GB card: one spatial tile, 17-frame temporal tiles with stride 8.
  const HunyuanTiling whole = HunyuanTiling::official(512, 768);
  EXPECT_EQ(whole.sample_height, 512);
  EXPECT_EQ(whole.sample_width, 768);
  EXPECT_EQ(whole.sample_frames, 16);
  EXPECT_EQ(whole.stride_frames, 8);
  // 1024x1024 exceeds 2^31 values: split with 16 px extra per tile and a 32 px overlap.
  const HunyuanTiling split = HunyuanTiling::official(1024, 1024);
  EXPECT_LT(split.sample_height, 1024);
  EXPECT_EQ(split.sample_height - split.stride_height, 32);
}

TEST(HunyuanVae, RejectsBadInput) {
  HunyuanGolden golden;
  Context ctx({.threads = 1, .precision = Precision::fp32});
  HunyuanVae vae(golden.config, golden.weights, true, true);
  HunyuanTiling tiling;
  EXPECT_THROW(vae.decode(ctx, Tensor::empty(DType::F32, {3, 2, 4, 4}), tiling), Error);
  EXPECT_THROW(vae.encode_moments(ctx, Tensor::empty(DType::F32, {3, 4, 8, 8}), tiling), Error);  // F != 1 + 4k
  EXPECT_THROW(HunyuanVaeConfig::from_json_file("/nonexistent/config.json"), Error);
}

TEST(HunyuanVae, MissingWeightIsAnError) {
  HunyuanGolden golden;
  HunyuanVaeConfig config = golden.config;
  config.block_out_channels = {8, 16, 32};  // shapes no longer match the stored tensors
  EXPECT_THROW(HunyuanVae(config, golden.weights, false, true), Error);
}

}  // namespace
}  // namespace k5
