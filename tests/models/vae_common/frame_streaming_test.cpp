// The frame-by-frame VAE blocks (models/vae_common/frame_streaming.h) against the whole-activation blocks of
// vae_blocks.h on random weights, with row bands small enough that every convolution is split into bands.
// (Whole-decoder parity with the official VAE is in hunyuan_vae_test.cpp.)
#include "models/vae_common/frame_streaming.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "support/compare.h"
#include "support/context.h"

namespace k5::vae {
namespace {

constexpr double kTolerance = 1e-5;  // fp32 relative L2: the same sums in another order
constexpr int64_t kTinyBands = 1;    // one output row per band

Tensor random_tensor(std::mt19937& rng, const Shape& shape, float scale = 0.5f) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(size_t(shape_numel(shape)));
  for (float& v : values) v = normal(rng);
  return Tensor::from_f32(values, shape);
}

Conv random_conv(std::mt19937& rng, int64_t in, int64_t out, int64_t kernel) {
  return {random_tensor(rng, {out, in, kernel, kernel, kernel}, 0.2f), random_tensor(rng, {out}, 0.2f)};
}

GroupNorm random_norm(std::mt19937& rng, int64_t channels) {
  GroupNorm norm;
  norm.weight = random_tensor(rng, {channels}, 0.5f);
  norm.bias = random_tensor(rng, {channels}, 0.5f);
  norm.groups = 2;
  return norm;
}

ResnetBlock random_resnet(std::mt19937& rng, int64_t in, int64_t out) {
  ResnetBlock block{random_norm(rng, in), random_norm(rng, out), random_conv(rng, in, out, 3),
                    random_conv(rng, out, out, 3), std::nullopt};
  if (in != out) block.conv_shortcut = random_conv(rng, in, out, 1);
  return block;
}

Tensor assemble(Context& ctx, StoredFrames& frames) {
  std::vector<Tensor> parts;
  for (int64_t t = 0; t < frames.frames(); ++t) parts.push_back(frames.frame(ctx, t));
  const Shape one = parts.front().shape();
  Tensor out = Tensor::empty(DType::F32, {one[0], frames.frames(), one[2], one[3]});
  for (int64_t t = 0; t < frames.frames(); ++t) out.slice(1, t, t + 1).copy_from(parts[size_t(t)]);
  return out;
}

TEST(FrameStreaming, ResnetMatchesWholeActivation) {
  Context ctx = test::make_context(Precision::fp32);
  std::mt19937 rng(7);
  for (const auto& [in, out] : {std::pair<int64_t, int64_t>{6, 8}, {8, 8}}) {
    const ResnetBlock block = random_resnet(rng, in, out);
    const Tensor x = random_tensor(rng, {in, 5, 9, 7}, 1.0f);
    const Tensor expected = resnet_forward(ctx, block, x, ConvStyle::causal);
    for (const int64_t band_bytes : {kTinyBands, kDefaultBandBytes}) {
      StoredFrames input(ctx, x);
      auto output = resnet_by_frames(ctx, block, input, band_bytes);
      const double error = test::relative_l2(assemble(ctx, *output), expected);
      EXPECT_LE(error, kTolerance) << in << " -> " << out << " channels, band bytes " << band_bytes;
    }
  }
}

TEST(FrameStreaming, UpsamplerFramesFeedTheNextResnet) {
  Context ctx = test::make_context(Precision::fp32);
  std::mt19937 rng(11);
  for (const auto& [factor_t, factor_hw] : {std::pair<int, int>{2, 2}, {1, 2}}) {
    const UpsampleConv upsample = make_upsample_conv(random_conv(rng, 4, 4, 3), factor_t, factor_hw, ConvStyle::causal);
    const ResnetBlock block = random_resnet(rng, 4, 6);
    const Tensor x = random_tensor(rng, {4, 3, 5, 4}, 1.0f);
    const Tensor expected = resnet_forward(ctx, block, upsample_conv_forward(ctx, upsample, x), ConvStyle::causal);
    UpsampledFrames upsampled(upsample, std::make_unique<StoredFrames>(ctx, x), kTinyBands);
    EXPECT_EQ(upsampled.frames(), 1 + factor_t * 2);
    auto output = resnet_by_frames(ctx, block, upsampled, kTinyBands);
    EXPECT_LE(test::relative_l2(assemble(ctx, *output), expected), kTolerance) << "time factor " << factor_t;
  }
}

TEST(FrameStreaming, NormConvMatchesWholeActivation) {
  Context ctx = test::make_context(Precision::fp32);
  std::mt19937 rng(13);
  const GroupNorm norm = random_norm(rng, 8);
  const Conv conv = random_conv(rng, 8, 3, 3);
  const Tensor x = random_tensor(rng, {8, 4, 6, 5}, 2.0f);
  const Tensor expected = conv_forward(ctx, conv, group_norm_forward(ctx, norm, x, /*silu=*/true), ConvStyle::causal);
  StoredFrames input(ctx, x);
  EXPECT_LE(test::relative_l2(norm_conv_by_frames(ctx, norm, conv, input, kTinyBands), expected), kTolerance);
}

TEST(FrameStreaming, MergedMomentsEqualWholeMoments) {
  Context ctx = test::make_context(Precision::fp32);
  std::mt19937 rng(17);
  const Tensor x = random_tensor(rng, {4, 6, 3, 5}, 3.0f);
  const ops::GroupMoments whole = ops::group_moments(ctx, x, 2);
  ops::GroupMoments merged;
  StoredFrames frames(ctx, x);
  for (int64_t t = 0; t < 6; ++t) merged.merge(ops::group_moments(ctx, frames.frame(ctx, t), 2));
  ASSERT_EQ(merged.count, whole.count);
  for (size_t g = 0; g < 2; ++g) {
    // The mean to within a millionth of the values' spread (it may be near zero: no relative bound on it).
    const double spread = std::sqrt(whole.m2[g] / double(whole.count));
    EXPECT_NEAR(merged.mean[g], whole.mean[g], 1e-6 * spread);
    EXPECT_NEAR(merged.m2[g], whole.m2[g], 1e-6 * whole.m2[g]);
  }
}

TEST(FrameStreaming, ReleasedFramesCannotBeRead) {
  Context ctx = test::make_context(Precision::fp32);
  std::mt19937 rng(19);
  StoredFrames frames(ctx, random_tensor(rng, {2, 4, 2, 2}));
  frames.release_before(2);
  EXPECT_THROW(frames.frame(ctx, 1), Error);
  EXPECT_NO_THROW(frames.frame(ctx, 2));
}

}  // namespace
}  // namespace k5::vae
