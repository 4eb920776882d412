// The FLUX VAE against diffusers AutoencoderKL (tests/golden/vae), shared by the CPU test (flux_vae_test.cpp)
// and the GPU test (backends/cuda/vae_test.cpp): each takes the Context and a VAE constructed on its device.
#pragma once

#include <gtest/gtest.h>

#include "models/vae_common/vae_golden.h"
#include "models/vae_flux/flux_vae.h"

namespace k5::test {

struct FluxGolden : VaeGolden<FluxVaeConfig> {
  FluxGolden() : VaeGolden("flux") {}
};

// Decode and encode, untiled or with diffusers' tiling (sample_size 32: 8x8 latent tiles, 25% overlap).
inline void check_flux_case(Context& ctx, const FluxVae& vae, const FluxGolden& golden, bool tiled) {
  FluxTiling tiling;
  tiling.enabled = tiled;
  const std::string name = tiled ? "tiled" : "untiled";
  expect_vae_golden(vae.decode(ctx, golden.item("decode.latents"), tiling), golden.item("decode." + name),
                    "decode " + name);
  const Tensor moments = vae.encode_moments(ctx, golden.item("encode.sample"), tiling);
  const int64_t c = golden.config.latent_channels;
  expect_vae_golden(moments.slice(0, 0, c).contiguous(), golden.item("encode." + name + ".mean"),
                    "encode " + name + " mean");
  // The golden logvar is clamped to [-30, 20]; these values are far inside that range.
  expect_vae_golden(moments.slice(0, c, 2 * c).contiguous(), golden.item("encode." + name + ".logvar"),
                    "encode " + name + " logvar");
}

}  // namespace k5::test
