// FLUX VAE vs diffusers AutoencoderKL on a tiny random-weight config (tools/golden/vae.py), untiled and
// with diffusers' tiling (sample_size 32: 8x8 latent tiles, 25% overlap).
#include <gtest/gtest.h>

#include "models/vae_flux/flux_vae_checks.h"

namespace k5 {
namespace {

using test::FluxGolden;

void check_case(bool tiled) {
  FluxGolden golden;
  Context ctx({.threads = 2, .precision = Precision::fp32});
  FluxVae vae(golden.config, golden.weights, true, true);
  EXPECT_FALSE(golden.config.use_quant_conv);
  test::check_flux_case(ctx, vae, golden, tiled);
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
