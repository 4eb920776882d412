// HunyuanVideo VAE vs the official kandinsky/models/vae.py on a tiny random-weight config
// (tools/golden/vae.py): untiled and tiled (temporal + spatial tiles), decode and encode.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "io/safetensors.h"
#include "models/vae_hunyuan/hunyuan_vae.h"
#include "support/compare.h"

namespace k5 {
namespace {

constexpr double kTolerance = 1e-4;  // fp32 relative L2

struct HunyuanGolden {
  HunyuanVaeConfig config = HunyuanVaeConfig::from_json_file(test::source_path("tests/golden/vae/hunyuan_config.json"));
  Checkpoint weights = Checkpoint::open(test::source_path("tests/golden/vae/hunyuan_weights.safetensors"));
  std::shared_ptr<SafetensorsFile> cases =
      SafetensorsFile::open(test::source_path("tests/golden/vae/hunyuan_cases.safetensors"));
  Tensor item(const std::string& name) const {
    Tensor t = cases->tensor(name);
    Tensor f = Tensor::empty(DType::F32, Shape(t.shape().begin() + 1, t.shape().end()));
    f.copy_from(t.select(0, 0));
    return f;
  }
  // The generator's apply_tiling((1, 9, 16, 16), (4, 12, 12)).
  static HunyuanTiling small_tiles() {
    HunyuanTiling tiling;
    tiling.sample_frames = 8;
    tiling.stride_frames = 4;
    tiling.sample_height = tiling.sample_width = 16;
    tiling.stride_height = tiling.stride_width = 12;
    return tiling;
  }
};

void expect_close(const Tensor& actual, const Tensor& expected) {
  const double error = test::relative_l2(actual, expected);
  std::printf("  relative L2 %.3g (shape %s)\n", error, shape_string(expected.shape()).c_str());
  EXPECT_LE(error, kTolerance);
}

Tensor clamp_logvar(const Tensor& logvar) {
  std::vector<float> values = logvar.to_f32_vector();
  for (float& v : values) v = std::clamp(v, -30.0f, 20.0f);
  return Tensor::from_f32(values, logvar.shape());
}

TEST(HunyuanVae, DecodeUntiledMatchesOfficial) {
  HunyuanGolden golden;
  Context ctx({.threads = 2, .precision = Precision::fp32});
  HunyuanVae vae(golden.config, golden.weights, false, true);
  HunyuanTiling tiling;
  tiling.enabled = false;
  const Tensor sample = vae.decode(ctx, golden.item("decode.latents"), tiling);
  expect_close(sample, golden.item("decode.untiled"));
}

TEST(HunyuanVae, DecodeSingleFrameMatchesOfficial) {
  HunyuanGolden golden;
  Context ctx({.threads = 2, .precision = Precision::fp32});
  HunyuanVae vae(golden.config, golden.weights, false, true);
  HunyuanTiling tiling;
  tiling.enabled = false;
  expect_close(vae.decode(ctx, golden.item("decode.single.latents"), tiling), golden.item("decode.single"));
}

TEST(HunyuanVae, DecodeTiledMatchesOfficial) {
  HunyuanGolden golden;
  Context ctx({.threads = 2, .precision = Precision::fp32});
  HunyuanVae vae(golden.config, golden.weights, false, true);
  const Tensor sample = vae.decode(ctx, golden.item("decode.latents"), HunyuanGolden::small_tiles());
  expect_close(sample, golden.item("decode.tiled"));
}

// Frame by frame (bounded memory): the same decodes as the whole-tile path, against the same goldens.
TEST(HunyuanVae, DecodeByFramesMatchesOfficial) {
  HunyuanGolden golden;
  Context ctx({.threads = 2, .precision = Precision::fp32});
  HunyuanVae vae(golden.config, golden.weights, false, true);
  HunyuanTiling untiled;
  untiled.enabled = false;
  untiled.by_frames = true;
  expect_close(vae.decode(ctx, golden.item("decode.latents"), untiled), golden.item("decode.untiled"));
  expect_close(vae.decode(ctx, golden.item("decode.single.latents"), untiled), golden.item("decode.single"));
  HunyuanTiling tiled = HunyuanGolden::small_tiles();
  tiled.by_frames = true;
  expect_close(vae.decode(ctx, golden.item("decode.latents"), tiled), golden.item("decode.tiled"));
}

TEST(HunyuanVae, WholeTileDecodeEstimate) {
  HunyuanGolden golden;
  HunyuanVae vae(golden.config, golden.weights, false, true);
  HunyuanTiling untiled;
  untiled.enabled = false;
  // latents [4, 3, 4, 4] -> 9 frames of 16x16; the small tiles cap a tile at 9 frames of 16x16 too.
  EXPECT_EQ(vae.whole_tile_decode_bytes({4, 3, 4, 4}, untiled), 48 * 8 * 9 * 16 * 16);
  EXPECT_EQ(vae.whole_tile_decode_bytes({4, 5, 8, 8}, HunyuanGolden::small_tiles()), 48 * 8 * 9 * 16 * 16);
}

TEST(HunyuanVae, EncodeUntiledMatchesOfficial) {
  HunyuanGolden golden;
  Context ctx({.threads = 2, .precision = Precision::fp32});
  HunyuanVae vae(golden.config, golden.weights, true, false);
  HunyuanTiling tiling;
  tiling.enabled = false;
  const Tensor moments = vae.encode_moments(ctx, golden.item("encode.sample"), tiling);
  const int64_t c = golden.config.latent_channels;
  expect_close(moments.slice(0, 0, c).contiguous(), golden.item("encode.untiled.mean"));
  expect_close(clamp_logvar(moments.slice(0, c, 2 * c).contiguous()), golden.item("encode.untiled.logvar"));
}

TEST(HunyuanVae, EncodeTiledMatchesOfficial) {
  HunyuanGolden golden;
  Context ctx({.threads = 2, .precision = Precision::fp32});
  HunyuanVae vae(golden.config, golden.weights, true, false);
  const Tensor moments = vae.encode_moments(ctx, golden.item("encode.sample"), HunyuanGolden::small_tiles());
  const int64_t c = golden.config.latent_channels;
  expect_close(moments.slice(0, 0, c).contiguous(), golden.item("encode.tiled.mean"));
  expect_close(clamp_logvar(moments.slice(0, c, 2 * c).contiguous()), golden.item("encode.tiled.logvar"));
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
