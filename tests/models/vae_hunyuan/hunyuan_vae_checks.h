// The HunyuanVideo VAE against the official kandinsky/models/vae.py (tests/golden/vae), shared by the CPU test
// (hunyuan_vae_test.cpp) and the GPU test (backends/cuda/vae_test.cpp): each takes the Context and a VAE
// constructed on its device.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>

#include "models/vae_common/vae_golden.h"
#include "models/vae_hunyuan/hunyuan_vae.h"

namespace k5::test {

struct HunyuanGolden : VaeGolden<HunyuanVaeConfig> {
  HunyuanGolden() : VaeGolden("hunyuan") {}

  static HunyuanTiling untiled() {
    HunyuanTiling tiling;
    tiling.enabled = false;
    return tiling;
  }
  // The generator's apply_tiling((1, 9, 16, 16), (4, 12, 12)): temporal and spatial tiles.
  static HunyuanTiling small_tiles() {
    HunyuanTiling tiling;
    tiling.sample_frames = 8;
    tiling.stride_frames = 4;
    tiling.sample_height = tiling.sample_width = 16;
    tiling.stride_height = tiling.stride_width = 12;
    return tiling;
  }
};

// The official decodes: the 5 latent frames untiled and with the small tiles, and a single latent frame.
enum class HunyuanDecode { untiled, tiled, single_frame };

// Decodes golden case `decode` (frame by frame when `by_frames`, else as the VAE chooses) and checks it against
// the official sample; returns the sample.
inline Tensor check_hunyuan_decode(Context& ctx, const HunyuanVae& vae, const HunyuanGolden& golden,
                                   HunyuanDecode decode, bool by_frames = false) {
  const bool single = decode == HunyuanDecode::single_frame, tiled = decode == HunyuanDecode::tiled;
  HunyuanTiling tiling = tiled ? HunyuanGolden::small_tiles() : HunyuanGolden::untiled();
  if (by_frames) tiling.by_frames = true;
  const std::string name = single ? "single" : tiled ? "tiled" : "untiled";
  const Tensor sample = vae.decode(ctx, golden.item(single ? "decode.single.latents" : "decode.latents"), tiling);
  expect_vae_golden(sample, golden.item("decode." + name), "decode " + name + (by_frames ? " by frames" : ""));
  return sample;
}

// Frame by frame (bounded memory): the same decodes as the whole-tile path, against the same goldens.
inline void check_hunyuan_decodes_by_frames(Context& ctx, const HunyuanVae& vae, const HunyuanGolden& golden) {
  for (const HunyuanDecode decode : {HunyuanDecode::untiled, HunyuanDecode::single_frame, HunyuanDecode::tiled})
    check_hunyuan_decode(ctx, vae, golden, decode, /*by_frames=*/true);
}

// The golden logvar is clamped to [-30, 20].
inline Tensor clamp_logvar(const Tensor& logvar) {
  std::vector<float> values = logvar.to_f32_vector();
  for (float& v : values) v = std::clamp(v, -30.0f, 20.0f);
  return Tensor::from_f32(values, logvar.shape());
}

inline void check_hunyuan_encode(Context& ctx, const HunyuanVae& vae, const HunyuanGolden& golden, bool tiled) {
  const std::string name = tiled ? "tiled" : "untiled";
  const Tensor moments = vae.encode_moments(ctx, golden.item("encode.sample"),
                                            tiled ? HunyuanGolden::small_tiles() : HunyuanGolden::untiled());
  const int64_t c = golden.config.latent_channels;
  expect_vae_golden(moments.slice(0, 0, c).contiguous(), golden.item("encode." + name + ".mean"),
                    "encode " + name + " mean");
  expect_vae_golden(clamp_logvar(moments.slice(0, c, 2 * c).contiguous()), golden.item("encode." + name + ".logvar"),
                    "encode " + name + " logvar");
}

}  // namespace k5::test
