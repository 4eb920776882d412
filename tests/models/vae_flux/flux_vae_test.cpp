// FLUX VAE vs diffusers AutoencoderKL on a tiny random-weight config (tools/golden/vae.py), untiled and
// with diffusers' tiling (sample_size 32: 8x8 latent tiles, 25% overlap).
#include <gtest/gtest.h>

#include <cstdio>

#include "io/safetensors.h"
#include "models/vae_flux/flux_vae.h"
#include "support/compare.h"

namespace k5 {
namespace {

constexpr double kTolerance = 1e-4;  // fp32 relative L2

struct FluxGolden {
  FluxVaeConfig config = FluxVaeConfig::from_json_file(test::source_path("tests/golden/vae/flux_config.json"));
  Checkpoint weights = Checkpoint::open(test::source_path("tests/golden/vae/flux_weights.safetensors"));
  std::shared_ptr<SafetensorsFile> cases =
      SafetensorsFile::open(test::source_path("tests/golden/vae/flux_cases.safetensors"));
  Tensor item(const std::string& name) const {
    Tensor t = cases->tensor(name);
    Tensor f = Tensor::empty(DType::F32, Shape(t.shape().begin() + 1, t.shape().end()));
    f.copy_from(t.select(0, 0));
    return f;
  }
};

void expect_close(const Tensor& actual, const Tensor& expected) {
  const double error = test::relative_l2(actual, expected);
  std::printf("  relative L2 %.3g (shape %s)\n", error, shape_string(expected.shape()).c_str());
  EXPECT_LE(error, kTolerance);
}

void check_case(bool tiled) {
  FluxGolden golden;
  Context ctx({.threads = 2, .precision = Precision::fp32});
  FluxVae vae(golden.config, golden.weights, true, true);
  EXPECT_FALSE(golden.config.use_quant_conv);
  FluxTiling tiling;
  tiling.enabled = tiled;
  const std::string name = tiled ? "tiled" : "untiled";
  expect_close(vae.decode(ctx, golden.item("decode.latents"), tiling), golden.item("decode." + name));
  const Tensor moments = vae.encode_moments(ctx, golden.item("encode.sample"), tiling);
  const int64_t c = golden.config.latent_channels;
  expect_close(moments.slice(0, 0, c).contiguous(), golden.item("encode." + name + ".mean"));
  // The golden logvar is clamped to [-30, 20]; these values are far inside that range.
  expect_close(moments.slice(0, c, 2 * c).contiguous(), golden.item("encode." + name + ".logvar"));
}

TEST(FluxVae, UntiledMatchesDiffusers) { check_case(false); }
TEST(FluxVae, TiledMatchesDiffusers) { check_case(true); }

TEST(FluxVae, RejectsBadInput) {
  FluxGolden golden;
  Context ctx({.threads = 1, .precision = Precision::fp32});
  FluxVae vae(golden.config, golden.weights, true, true);
  EXPECT_THROW(vae.decode(ctx, Tensor::empty(DType::F32, {3, 4, 4}), {}), Error);
  EXPECT_THROW(vae.encode_moments(ctx, Tensor::empty(DType::F32, {3, 10, 12}), {}), Error);
  FluxVaeConfig config = golden.config;
  config.use_post_quant_conv = true;  // the weights have no post_quant_conv
  EXPECT_THROW(FluxVae(config, golden.weights, false, true), Error);
}

}  // namespace
}  // namespace k5
