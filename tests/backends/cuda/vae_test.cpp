// The VAEs on the GPU (HunyuanVae / FluxVae constructed with Device::CUDA) through the CPU tests' checks
// (tests/models/vae_*/*_checks.h: the goldens of tests/golden/vae, tools/golden/vae.py): decode and encode,
// untiled and tiled (the official blending on the device), the HunyuanVideo decode frame by frame too, all within
// the CPU tests' fp32 1e-4; the frame-by-frame blocks on the GPU with one-row bands against the whole-activation
// blocks on the CPU; and the VAE-only ops (frame-causal attention, strided copy, tile blend) against the CPU.
#include <cmath>

#include "backends/cuda/kernels.h"
#include "gpu_test_util.h"
#include "models/vae_common/frame_streaming.h"
#include "models/vae_flux/flux_vae_checks.h"
#include "models/vae_hunyuan/hunyuan_vae_checks.h"
#include "ops/conv.h"

namespace k5::test {
namespace {

class CudaHunyuanVae : public GpuTest {
 protected:
  HunyuanGolden golden;
  Tensor item(const std::string& name) const { return golden.item(name); }
};

TEST_F(CudaHunyuanVae, DecodeUntiledMatchesOfficial) {
  const HunyuanVae vae(golden.config, golden.weights, false, true, Device::CUDA);
  EXPECT_EQ(vae.device(), Device::CUDA);
  check_hunyuan_decode(ctx, vae, golden, HunyuanDecode::untiled);
  check_hunyuan_decode(ctx, vae, golden, HunyuanDecode::single_frame);
}

TEST_F(CudaHunyuanVae, DecodeTiledMatchesOfficialAndTheCpu) {
  const HunyuanVae vae(golden.config, golden.weights, false, true, Device::CUDA);
  const Tensor gpu = check_hunyuan_decode(ctx, vae, golden, HunyuanDecode::tiled);
  const HunyuanVae cpu_vae(golden.config, golden.weights, false, true);
  EXPECT_LE(relative_l2(gpu, cpu_vae.decode(ctx, item("decode.latents"), HunyuanGolden::small_tiles())), kVaeTolerance);
}

// The default precision (bf16) decodes with TF32 convolutions: within 1e-2 of the CPU's float32 (the issue's
// whole-model BF16 bound is 3e-2).
TEST_F(CudaHunyuanVae, DecodeInBf16PrecisionStaysClose) {
  Context bf16_ctx({.threads = 2, .precision = Precision::bf16, .log_level = LogLevel::quiet});
  const HunyuanVae vae(golden.config, golden.weights, false, true, Device::CUDA);
  const HunyuanVae cpu_vae(golden.config, golden.weights, false, true);
  const Tensor gpu = vae.decode(bf16_ctx, item("decode.latents"), HunyuanGolden::small_tiles());
  EXPECT_LE(relative_l2(gpu, cpu_vae.decode(ctx, item("decode.latents"), HunyuanGolden::small_tiles())), 1e-2);
}

TEST_F(CudaHunyuanVae, DecodeTiledSpatialOnly) {
  // With 64-frame temporal tiles the 5 latent frames are one temporal tile: only the spatial tiles and their
  // blends run (tiled_decode straight from decode). No golden for this tiling: the CPU decode is the reference.
  const HunyuanVae vae(golden.config, golden.weights, false, true, Device::CUDA),
      cpu_vae(golden.config, golden.weights, false, true);
  const Tensor latents = item("decode.latents");
  HunyuanTiling spatial = HunyuanGolden::small_tiles();
  spatial.sample_frames = 64;  // one temporal tile
  const Tensor expected = cpu_vae.decode(ctx, latents, spatial);
  EXPECT_LE(relative_l2(vae.decode(ctx, latents, spatial), expected), kVaeTolerance);
}

TEST_F(CudaHunyuanVae, DecodeFrameByFrameOnTheGpuMatchesOfficial) {
  // Asked for explicitly: honoured on the GPU too.
  check_hunyuan_decodes_by_frames(ctx, HunyuanVae(golden.config, golden.weights, false, true, Device::CUDA), golden);
}

TEST_F(CudaHunyuanVae, AutoDecodesByFramesWhenTheGpuIsShort) {
  const HunyuanVae vae(golden.config, golden.weights, false, true, Device::CUDA);
  // A whole tile beyond any GPU's memory goes frame by frame; a small one whole; an explicit choice is kept.
  HunyuanTiling tiling = HunyuanGolden::untiled();
  EXPECT_TRUE(vae.decodes_by_frames({golden.config.latent_channels, 1000, 1000, 1000}, tiling));
  EXPECT_FALSE(vae.decodes_by_frames({golden.config.latent_channels, 3, 4, 4}, tiling));
  tiling.by_frames = true;
  EXPECT_TRUE(vae.decodes_by_frames({golden.config.latent_channels, 3, 4, 4}, tiling));
  tiling.by_frames = false;
  EXPECT_FALSE(vae.decodes_by_frames({golden.config.latent_channels, 1000, 1000, 1000}, tiling));
}

TEST_F(CudaHunyuanVae, EncodeUntiledAndTiledMatchOfficial) {
  const HunyuanVae vae(golden.config, golden.weights, true, false, Device::CUDA);
  check_hunyuan_encode(ctx, vae, golden, false);
  check_hunyuan_encode(ctx, vae, golden, true);
}

TEST_F(CudaHunyuanVae, StridedHostInputIsAccepted) {
  // A host view that is not contiguous (a channel-last tensor permuted) is copied over as it is.
  const HunyuanVae vae(golden.config, golden.weights, false, true, Device::CUDA);
  const Tensor latents = item("decode.latents");
  const Tensor channel_last = latents.permute({1, 2, 3, 0}).contiguous();  // [T, H, W, C]
  const Tensor view = channel_last.permute({3, 0, 1, 2});                  // [C, T, H, W], strided
  ASSERT_FALSE(view.is_contiguous());
  expect_vae_golden(vae.decode(ctx, view, HunyuanGolden::untiled()), item("decode.untiled"),
                    "decode of a strided view");
}

class CudaFluxVae : public GpuTest {
 protected:
  FluxGolden golden;
  void check_case(bool tiled) {
    const FluxVae vae(golden.config, golden.weights, true, true, Device::CUDA);
    EXPECT_EQ(vae.device(), Device::CUDA);
    check_flux_case(ctx, vae, golden, tiled);
  }
};

TEST_F(CudaFluxVae, UntiledMatchesDiffusers) { check_case(false); }
TEST_F(CudaFluxVae, TiledMatchesDiffusers) { check_case(true); }

// Random VAE blocks (as tests/models/vae_common/frame_streaming_test.cpp), on the host or uploaded.
vae::Conv random_conv(uint32_t seed, int64_t in, int64_t out, int64_t kernel) {
  return {random_tensor({out, in, kernel, kernel, kernel}, seed, 0.2f), random_tensor({out}, seed + 1, 0.2f)};
}
vae::GroupNorm random_norm(uint32_t seed, int64_t channels) {
  vae::GroupNorm norm;
  norm.weight = random_tensor({channels}, seed, 0.5f);
  norm.bias = random_tensor({channels}, seed + 1, 0.5f);
  norm.groups = 2;
  return norm;
}
vae::ResnetBlock random_resnet(uint32_t seed, int64_t in, int64_t out) {
  vae::ResnetBlock block{random_norm(seed, in), random_norm(seed + 2, out), random_conv(seed + 4, in, out, 3),
                         random_conv(seed + 6, out, out, 3), std::nullopt};
  if (in != out) block.conv_shortcut = random_conv(seed + 8, in, out, 1);
  return block;
}
vae::Conv gpu_conv(const vae::Conv& conv) { return {on_gpu(conv.weight), on_gpu(conv.bias)}; }
vae::GroupNorm gpu_norm(vae::GroupNorm norm) {
  norm.weight = on_gpu(norm.weight);
  norm.bias = on_gpu(norm.bias);
  return norm;
}
vae::ResnetBlock gpu_resnet(const vae::ResnetBlock& block) {
  vae::ResnetBlock gpu{gpu_norm(block.norm1), gpu_norm(block.norm2), gpu_conv(block.conv1), gpu_conv(block.conv2),
                       std::nullopt};
  if (block.conv_shortcut) gpu.conv_shortcut = gpu_conv(*block.conv_shortcut);
  return gpu;
}

// The frames of a StoredFrames as one host [C, T, H, W] tensor.
Tensor assemble(Context& ctx, vae::StoredFrames& frames) {
  std::vector<Tensor> parts;
  for (int64_t t = 0; t < frames.frames(); ++t) {
    const Tensor frame = frames.frame(ctx, t);
    EXPECT_EQ(frame.device(), Device::CUDA) << "frame " << t;
    parts.push_back(frame.to_device(Device::CPU));
  }
  const Shape one = parts.front().shape();
  Tensor out = Tensor::empty(DType::F32, {one[0], frames.frames(), one[2], one[3]});
  for (int64_t t = 0; t < frames.frames(); ++t) out.slice(1, t, t + 1).copy_from(parts[size_t(t)]);
  return out;
}

constexpr int64_t kOneRowBands = 1;

using CudaFrameStreaming = GpuTest;

TEST_F(CudaFrameStreaming, ResnetInOneRowBandsMatchesTheWholeCpuBlock) {
  uint32_t seed = 800;
  for (const auto& [in, out] : {std::pair<int64_t, int64_t>{6, 8}, {8, 8}}) {
    const vae::ResnetBlock block = random_resnet(seed += 10, in, out);
    const Tensor x = random_tensor({in, 5, 9, 7}, seed + 9);
    const Tensor expected = vae::resnet_forward(ctx, block, x, vae::ConvStyle::causal);
    const vae::ResnetBlock gpu_block = gpu_resnet(block);
    for (const int64_t band_bytes : {kOneRowBands, vae::kDefaultBandBytes}) {
      vae::StoredFrames input(ctx, on_gpu(x));
      auto output = vae::resnet_by_frames(ctx, gpu_block, input, band_bytes);
      EXPECT_LE(relative_l2(assemble(ctx, *output), expected), kF32Tolerance)
          << in << " -> " << out << " channels, band bytes " << band_bytes;
    }
  }
}

TEST_F(CudaFrameStreaming, UpsampledFramesAndNormConvInOneRowBands) {
  uint32_t seed = 900;
  for (const auto& [factor_t, factor_hw] : {std::pair<int, int>{2, 2}, {1, 2}}) {
    SCOPED_TRACE(::testing::Message() << "time factor " << factor_t);
    const vae::Conv conv = random_conv(seed += 10, 4, 4, 3);
    const vae::UpsampleConv upsample = vae::make_upsample_conv(conv, factor_t, factor_hw, vae::ConvStyle::causal);
    // Made from the uploaded weight: the phase kernels are summed on the host and placed on the GPU.
    const vae::UpsampleConv gpu_upsample =
        vae::make_upsample_conv(gpu_conv(conv), factor_t, factor_hw, vae::ConvStyle::causal);
    ASSERT_EQ(gpu_upsample.phases.front().conv.weight.device(), Device::CUDA);
    const vae::ResnetBlock block = random_resnet(seed + 1, 4, 6);
    const Tensor x = random_tensor({4, 3, 5, 4}, seed + 2);
    const Tensor expected =
        vae::resnet_forward(ctx, block, vae::upsample_conv_forward(ctx, upsample, x), vae::ConvStyle::causal);
    vae::UpsampledFrames upsampled(gpu_upsample, std::make_unique<vae::StoredFrames>(ctx, on_gpu(x)), kOneRowBands);
    auto output = vae::resnet_by_frames(ctx, gpu_resnet(block), upsampled, kOneRowBands);
    EXPECT_LE(relative_l2(assemble(ctx, *output), expected), kF32Tolerance);
  }
  const vae::GroupNorm norm = random_norm(seed += 10, 8);
  const vae::Conv conv = random_conv(seed + 2, 8, 3, 3);
  const Tensor x = random_tensor({8, 4, 6, 5}, seed + 4, 2.0f);
  const Tensor expected =
      vae::conv_forward(ctx, conv, vae::group_norm_forward(ctx, norm, x, /*silu=*/true), vae::ConvStyle::causal);
  vae::StoredFrames input(ctx, on_gpu(x));
  EXPECT_LE(gpu_vs_cpu(vae::norm_conv_by_frames(ctx, gpu_norm(norm), gpu_conv(conv), input, kOneRowBands), expected),
            kF32Tolerance);
}

using CudaVaeOps = GpuTest;

// frame_causal_attention through the op layer on both devices; with score_budget_bytes > 0 the GPU side calls
// cuda::frame_causal_attention directly so its query chunking runs on a small problem.
void check_frame_attention(Context& ctx, int64_t dim, int frames, int64_t frame_tokens, float scale, uint32_t seed,
                           int64_t score_budget_bytes = 0) {
  SCOPED_TRACE(::testing::Message() << "dim " << dim << " frames " << frames << " tokens per frame " << frame_tokens
                                    << " scale " << scale << " score budget " << score_budget_bytes);
  const int64_t tokens = frames * frame_tokens;
  const Tensor q = random_tensor({dim, tokens}, seed), k = random_tensor({dim, tokens}, seed + 1);
  const Tensor v = random_tensor({dim, tokens}, seed + 2);
  Tensor expected = Tensor::empty(DType::F32, {dim, tokens});
  ops::frame_causal_attention(ctx, q, k, v, frames, expected, scale);
  // The output starts non-zero: every element must be written.
  Tensor out = on_gpu(random_tensor({dim, tokens}, seed + 3));
  if (score_budget_bytes > 0)
    cuda::frame_causal_attention(ctx, on_gpu(q), on_gpu(k), on_gpu(v), frames, out, scale, score_budget_bytes);
  else
    ops::frame_causal_attention(ctx, on_gpu(q), on_gpu(k), on_gpu(v), frames, out, scale);
  EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance);
}

TEST_F(CudaVaeOps, FrameCausalAttentionAgreesWithCpu) {
  uint32_t seed = 300;
  check_frame_attention(ctx, 8, 1, 37, 0.0f, seed += 5);    // full attention (FLUX)
  check_frame_attention(ctx, 8, 3, 16, 0.0f, seed += 5);    // frame-causal (HunyuanVideo)
  check_frame_attention(ctx, 16, 5, 7, 0.0f, seed += 5);    // odd frame sizes, partial warps of queries
  check_frame_attention(ctx, 1, 2, 3, 0.0f, seed += 5);     // a single channel
  check_frame_attention(ctx, 32, 4, 33, 0.25f, seed += 5);  // explicit scale
}

TEST_F(CudaVaeOps, FrameCausalAttentionAtVaeWidth) {
  // The real mid-block: 512 channels (beyond the dense kernel's 128), 3 latent frames of 12 x 16.
  check_frame_attention(ctx, 512, 3, 12 * 16, 0.0f, 400);
  check_frame_attention(ctx, 512, 1, 24 * 20, 0.0f, 410);
}

TEST_F(CudaVaeOps, FrameCausalAttentionInQueryChunks) {
  // Budgets of one query row and of a few: chunks that end inside a frame and at its end.
  check_frame_attention(ctx, 8, 3, 20, 0.0f, 500, 1);
  check_frame_attention(ctx, 8, 3, 20, 0.0f, 510, 7 * 60 * int64_t(sizeof(float)));
  check_frame_attention(ctx, 64, 2, 50, 0.0f, 520, 33 * 100 * int64_t(sizeof(float)));
}

TEST_F(CudaVaeOps, CopyStridedViews) {
  const Tensor x = random_tensor({4, 5, 6, 7}, 600);
  const Tensor gpu_x = on_gpu(x);
  struct Case {
    const char* name;
    Tensor (*view)(const Tensor&);
  };
  const Case cases[] = {
      {"contiguous", [](const Tensor& t) { return t; }},
      {"frame slice", [](const Tensor& t) { return t.slice(1, 2, 3); }},
      {"window", [](const Tensor& t) { return t.slice(2, 1, 5).slice(3, 2, 7); }},
      {"transpose",
       [](const Tensor& t) {
         return t.reshape({4, 210}).transpose(0, 1);
       }},
      {"permute",
       [](const Tensor& t) {
         return t.permute({3, 1, 0, 2});
       }},
      {"rank 5", [](const Tensor& t) { return t.unsqueeze(2).slice(4, 1, 6); }},
      {"rank 1", [](const Tensor& t) { return t.select(0, 1).select(0, 2).select(0, 3); }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const Tensor source = c.view(x), gpu_source = c.view(gpu_x);
    Tensor expected = Tensor::empty(DType::F32, source.shape());
    ops::copy(ctx, source, expected);
    EXPECT_EQ(relative_l2(expected, source.contiguous()), 0.0);
    Tensor out = Tensor::empty(DType::F32, source.shape(), Device::CUDA);
    ops::copy(ctx, gpu_source, out);
    EXPECT_EQ(gpu_vs_cpu(out, expected), 0.0);
  }
  // Into a strided destination: the middle frames of a bigger tensor (as the tile concatenation does).
  Tensor assembled = on_gpu(random_tensor({4, 9, 6, 7}, 601));
  Tensor middle = assembled.slice(1, 2, 7);
  ops::copy(ctx, gpu_x, middle);
  EXPECT_EQ(relative_l2(assembled.slice(1, 2, 7).to_device(Device::CPU), x), 0.0);
}

TEST_F(CudaVaeOps, CopyRejectsMixedDevicesAndShapes) {
  const Tensor host = random_tensor({3, 4}, 610);
  Tensor gpu = Tensor::empty(DType::F32, {3, 4}, Device::CUDA);
  EXPECT_THROW(ops::copy(ctx, host, gpu), Error);
  Tensor wrong = Tensor::empty(DType::F32, {4, 3}, Device::CUDA);
  EXPECT_THROW(ops::copy(ctx, on_gpu(host), wrong), Error);
}

TEST_F(CudaVaeOps, BlendAgreesWithCpuOnEveryAxis) {
  uint32_t seed = 700;
  for (int axis = 1; axis <= 3; ++axis)
    for (const int64_t extent : {int64_t(0), int64_t(1), int64_t(3), int64_t(100)}) {
      SCOPED_TRACE(::testing::Message() << "axis " << axis << " extent " << extent);
      Shape a_shape{3, 5, 6, 7}, b_shape{3, 5, 6, 7};
      a_shape[size_t(axis)] = 4;  // tiles of unequal length along the blend axis
      const Tensor a = random_tensor(a_shape, seed += 3), b = random_tensor(b_shape, seed + 1);
      Tensor expected = b.clone();
      ops::blend(ctx, a, expected, axis, extent);
      Tensor out = on_gpu(b);
      ops::blend(ctx, on_gpu(a), out, axis, extent);
      EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance);
    }
}

}  // namespace
}  // namespace k5::test
