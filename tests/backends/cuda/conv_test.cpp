// The VAE ops (src/ops/conv.h) on the GPU against the CPU ops on the same inputs: conv3d (implicit GEMM,
// including forced chunking of its column buffer), GroupNorm and its separable statistics, nearest
// upsampling and strided placement.
#include "ops/conv.h"

#include <cmath>
#include <string>

#include "backends/cuda/kernels.h"
#include "gpu_test_util.h"

namespace k5::test {
namespace {

using CudaConvOps = GpuTest;

std::string geometry_string(const ops::ConvGeometry& g) {
  std::string s = "stride";
  for (int v : g.stride) s += " " + std::to_string(v);
  s += ", pad before";
  for (int v : g.pad_before) s += " " + std::to_string(v);
  s += ", pad after";
  for (int v : g.pad_after) s += " " + std::to_string(v);
  return s + (g.pad_mode == ops::PadMode::replicate ? ", replicate" : ", zeros");
}

struct ConvCase {
  Shape x, weight;
  ops::ConvGeometry geometry;
  bool bias = true;
  bool accumulate = false;
};

// conv3d through the op layer (CPU reference, then the GPU); with column_budget_bytes > 0 the GPU side calls
// cuda::conv3d directly with that column budget, so the chunked path runs on a small problem.
void check_conv(Context& ctx, const ConvCase& c, uint32_t seed, int64_t column_budget_bytes = 0) {
  SCOPED_TRACE(::testing::Message() << "x " << shape_string(c.x) << " weight " << shape_string(c.weight) << " "
                                    << geometry_string(c.geometry) << " bias " << c.bias << " accumulate "
                                    << c.accumulate << " column budget " << column_budget_bytes);
  const Tensor x = random_tensor(c.x, seed);
  const Tensor weight = random_tensor(c.weight, seed + 1, 0.1f), bias = random_tensor({c.weight[0]}, seed + 2);
  const Shape out_shape = ops::conv3d_output_shape(c.x, c.weight, c.geometry);
  const Tensor residual = random_tensor(out_shape, seed + 3);

  Tensor expected = c.accumulate ? residual.clone() : Tensor::empty(DType::F32, out_shape);
  ops::conv3d(ctx, x, weight, c.bias ? &bias : nullptr, c.geometry, expected, c.accumulate);

  const Tensor gpu_x = on_gpu(x), gpu_weight = on_gpu(weight), gpu_bias = on_gpu(bias);
  // Without accumulation the output starts as garbage-like data: the op must overwrite all of it.
  Tensor out = on_gpu(residual);
  if (column_budget_bytes > 0)
    cuda::conv3d(ctx, gpu_x, gpu_weight, c.bias ? &gpu_bias : nullptr, c.geometry, out, c.accumulate,
                 column_budget_bytes);
  else
    ops::conv3d(ctx, gpu_x, gpu_weight, c.bias ? &gpu_bias : nullptr, c.geometry, out, c.accumulate);
  EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance);
}

ops::ConvGeometry zero_padded(std::array<int, 3> pad_before, std::array<int, 3> pad_after,
                              std::array<int, 3> stride = {1, 1, 1}) {
  ops::ConvGeometry g;
  g.stride = stride;
  g.pad_before = pad_before;
  g.pad_after = pad_after;
  g.pad_mode = ops::PadMode::zeros;
  return g;
}

TEST_F(CudaConvOps, CausalConv3x3x3OddSizes) {
  const ops::ConvGeometry causal = ops::causal_conv_geometry(3, 3, 3);
  uint32_t seed = 100;
  for (bool bias : {true, false})
    for (bool accumulate : {false, true})
      check_conv(ctx, {{12, 5, 13, 17}, {20, 12, 3, 3, 3}, causal, bias, accumulate}, seed += 5);
  // One frame (the first latent frame alone) and a single channel.
  check_conv(ctx, {{12, 1, 13, 17}, {20, 12, 3, 3, 3}, causal}, seed += 5);
  check_conv(ctx, {{1, 3, 6, 5}, {3, 1, 3, 3, 3}, causal}, seed += 5);
}

TEST_F(CudaConvOps, StridedDownsampling) {
  uint32_t seed = 200;
  // HunyuanVideo's downsamplers: time and space, or space only; even and odd sizes.
  for (std::array<int, 3> stride : {std::array<int, 3>{2, 2, 2}, std::array<int, 3>{1, 2, 2}}) {
    check_conv(ctx, {{8, 5, 16, 16}, {8, 8, 3, 3, 3}, ops::causal_conv_geometry(3, 3, 3, stride)}, seed += 5);
    check_conv(ctx, {{12, 5, 13, 17}, {20, 12, 3, 3, 3}, ops::causal_conv_geometry(3, 3, 3, stride)}, seed += 5);
  }
  // FLUX's downsampler: F.pad(x, (0, 1, 0, 1)) with zeros, then a 3x3 stride-2 conv.
  check_conv(ctx, {{12, 1, 13, 17}, {20, 12, 1, 3, 3}, zero_padded({0, 0, 0}, {0, 1, 1}, {1, 2, 2})}, seed += 5);
  check_conv(ctx, {{8, 1, 16, 16}, {8, 8, 1, 3, 3}, zero_padded({0, 0, 0}, {0, 1, 1}, {1, 2, 2}), false}, seed += 5);
}

TEST_F(CudaConvOps, PointwiseConv) {
  uint32_t seed = 300;
  const ops::ConvGeometry none;
  for (bool bias : {true, false})
    for (bool accumulate : {false, true})
      check_conv(ctx, {{12, 5, 13, 17}, {20, 12, 1, 1, 1}, none, bias, accumulate}, seed += 5);
  // A 1x1x1 conv that is not pointwise (strided, padded) goes through the gather.
  check_conv(ctx, {{12, 5, 13, 17}, {20, 12, 1, 1, 1}, zero_padded({0, 0, 0}, {0, 0, 0}, {1, 2, 2})}, seed += 5);
  check_conv(ctx, {{12, 5, 13, 17}, {20, 12, 1, 1, 1}, zero_padded({1, 1, 1}, {0, 1, 0})}, seed += 5);
}

TEST_F(CudaConvOps, ImageConv2d) {
  // FLUX VAE convs: [C, 1, H, W] images, 3x3 kernels, zero padding 1; and a replicate-padded 2D conv.
  uint32_t seed = 400;
  for (bool bias : {true, false})
    check_conv(ctx, {{12, 1, 13, 17}, {20, 12, 1, 3, 3}, zero_padded({0, 1, 1}, {0, 1, 1}), bias}, seed += 5);
  check_conv(ctx, {{16, 1, 32, 24}, {16, 16, 1, 3, 3}, zero_padded({0, 1, 1}, {0, 1, 1}), true, true}, seed += 5);
  ops::ConvGeometry replicate = zero_padded({0, 1, 1}, {0, 1, 1});
  replicate.pad_mode = ops::PadMode::replicate;
  check_conv(ctx, {{12, 1, 13, 17}, {20, 12, 1, 3, 3}, replicate}, seed += 5);
}

TEST_F(CudaConvOps, AsymmetricAndLargeZeroPadding) {
  // Padding wider than the kernel reach: whole patch rows and columns read zeros.
  uint32_t seed = 500;
  check_conv(ctx, {{4, 3, 7, 9}, {6, 4, 2, 3, 3}, zero_padded({2, 3, 0}, {1, 0, 4})}, seed += 5);
  check_conv(ctx, {{4, 3, 7, 9}, {6, 4, 2, 3, 3}, zero_padded({2, 3, 0}, {1, 0, 4}, {2, 1, 3})}, seed += 5);
}

TEST_F(CudaConvOps, ChunkedColumnBuffer) {
  // Budgets that split the 5*13*17 = 1105 output positions into many chunks, the last one ragged (the
  // budget is not a multiple of the patch length 12*27 = 324 floats), and one below a single patch (one
  // position per chunk).
  uint32_t seed = 600;
  const int64_t patch_bytes = 12 * 27 * int64_t(sizeof(float));
  for (int64_t budget : {patch_bytes * 100 + 7, patch_bytes * 1104, patch_bytes * 1105, patch_bytes * 5000}) {
    check_conv(ctx, {{12, 5, 13, 17}, {20, 12, 3, 3, 3}, ops::causal_conv_geometry(3, 3, 3)}, seed += 5, budget);
    check_conv(ctx, {{12, 5, 13, 17}, {20, 12, 3, 3, 3}, ops::causal_conv_geometry(3, 3, 3, {2, 2, 2}), false, true},
               seed += 5, budget);
  }
  check_conv(ctx, {{3, 2, 5, 6}, {4, 3, 3, 3, 3}, ops::causal_conv_geometry(3, 3, 3)}, seed += 5, 1);
  check_conv(ctx, {{3, 2, 5, 6}, {4, 3, 3, 3, 3}, ops::causal_conv_geometry(3, 3, 3), true, true}, seed += 5, 1);
}

TEST_F(CudaConvOps, VaeSizedConvWithDefaultBudget) {
  // A decoder-like layer: 128 channels, 3x3x3, two 64x64 frames (R = 3456, 8192 positions: one chunk).
  check_conv(ctx, {{128, 2, 64, 64}, {128, 128, 3, 3, 3}, ops::causal_conv_geometry(3, 3, 3)}, 700);
}

// In Precision::bf16 the GPU's convolutions multiply on the tensor cores in TF32 (10-bit mantissas): within TF32's
// rounding of the CPU's float32, on a VAE-sized 3x3x3 conv and a pointwise one.
TEST_F(CudaConvOps, Tf32InBf16PrecisionStaysClose) {
  Context bf16_ctx({.threads = 2, .precision = Precision::bf16, .log_level = LogLevel::quiet});
  for (const ConvCase& c : {ConvCase{{128, 3, 20, 24}, {128, 128, 3, 3, 3}, ops::causal_conv_geometry(3, 3, 3)},
                            ConvCase{{256, 2, 9, 10}, {128, 256, 1, 1, 1}, zero_padded({0, 0, 0}, {0, 0, 0})}}) {
    const Tensor x = random_tensor(c.x, 60), weight = random_tensor(c.weight, 61, 0.1f),
                 bias = random_tensor({c.weight[0]}, 62);
    const Shape out_shape = ops::conv3d_output_shape(c.x, c.weight, c.geometry);
    Tensor expected = Tensor::empty(DType::F32, out_shape);
    ops::conv3d(ctx, x, weight, &bias, c.geometry, expected, false);
    const Tensor gpu_bias = on_gpu(bias);
    Tensor out = Tensor::empty(DType::F32, out_shape, Device::CUDA);
    ops::conv3d(bf16_ctx, on_gpu(x), on_gpu(weight), &gpu_bias, c.geometry, out, false);
    const double error = gpu_vs_cpu(out, expected);
    EXPECT_LE(error, 3e-3) << shape_string(c.weight);
    EXPECT_GT(error, 1e-5) << "TF32 products should differ from float32 by more than reordering does";
  }
}

TEST_F(CudaConvOps, MixedDevicesAreRejected) {
  const Tensor x = on_gpu(random_tensor({4, 2, 5, 5}, 800)), weight = on_gpu(random_tensor({4, 4, 3, 3, 3}, 801));
  const Tensor host_bias = random_tensor({4}, 802);
  Tensor out = Tensor::empty(DType::F32, {4, 2, 5, 5}, Device::CUDA);
  EXPECT_THROW(ops::conv3d(ctx, x, weight, &host_bias, ops::causal_conv_geometry(3, 3, 3), out), Error);
  EXPECT_THROW(ops::group_norm(ctx, x, 2, &host_bias, nullptr, 1e-6f, false, out), Error);
}

// group_norm through the op layer, CPU vs GPU, with and without the affine and the SiLU, out of place and
// in place.
void check_group_norm(Context& ctx, const Shape& shape, int groups, uint32_t seed, float offset = 0.0f) {
  SCOPED_TRACE(::testing::Message() << shape_string(shape) << " groups " << groups << " offset " << offset);
  Tensor x = random_tensor(shape, seed, 2.0f);
  if (offset != 0.0f)
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] += offset;
  const Tensor weight = random_tensor({shape[0]}, seed + 1), bias = random_tensor({shape[0]}, seed + 2);
  const Tensor gpu_x = on_gpu(x), gpu_weight = on_gpu(weight), gpu_bias = on_gpu(bias);
  for (bool affine : {false, true})
    for (bool silu : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "affine " << affine << " silu " << silu);
      Tensor expected = Tensor::empty(DType::F32, shape);
      ops::group_norm(ctx, x, groups, affine ? &weight : nullptr, affine ? &bias : nullptr, 1e-6f, silu, expected);
      Tensor out = Tensor::empty(DType::F32, shape, Device::CUDA);
      ops::group_norm(ctx, gpu_x, groups, affine ? &gpu_weight : nullptr, affine ? &gpu_bias : nullptr, 1e-6f, silu,
                      out);
      EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance);
      Tensor in_place = on_gpu(x);
      ops::group_norm(ctx, in_place, groups, affine ? &gpu_weight : nullptr, affine ? &gpu_bias : nullptr, 1e-6f, silu,
                      in_place);
      EXPECT_LE(gpu_vs_cpu(in_place, expected), kF32Tolerance);
    }
}

TEST_F(CudaConvOps, GroupNorm32Groups) {
  uint32_t seed = 900;
  for (int64_t channels : {32, 64, 96, 128}) check_group_norm(ctx, {channels, 3, 13, 17}, 32, seed += 3);
  // An image (T = 1) and a 2D [C, L] activation (the mid-block attention's input).
  check_group_norm(ctx, {64, 1, 20, 24}, 32, seed += 3);
  check_group_norm(ctx, {128, 300}, 32, seed += 3);
  // Groups of 532480 values (130 slices per group) with a large mean: the statistics must stay accurate.
  check_group_norm(ctx, {32, 2, 512, 520}, 32, seed += 3, 30.0f);
}

void expect_moments_near(const ops::GroupMoments& actual, const ops::GroupMoments& expected) {
  ASSERT_EQ(actual.count, expected.count);
  ASSERT_EQ(actual.mean.size(), expected.mean.size());
  ASSERT_EQ(actual.m2.size(), expected.m2.size());
  for (size_t g = 0; g < expected.mean.size(); ++g) {
    const double variance = expected.m2[g] / double(expected.count);
    EXPECT_NEAR(actual.mean[g], expected.mean[g], 1e-6 * std::sqrt(variance) + 1e-12) << "group " << g;
    EXPECT_NEAR(actual.m2[g], expected.m2[g], 1e-6 * expected.m2[g]) << "group " << g;
  }
}

TEST_F(CudaConvOps, GroupMomentsMergedOverFramesEqualWhole) {
  const Shape shape{64, 6, 11, 13};
  Tensor x = random_tensor(shape, 950, 1.5f);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] += 4.0f;
  const Tensor weight = random_tensor({64}, 951), bias = random_tensor({64}, 952);
  const ops::GroupMoments whole_cpu = ops::group_moments(ctx, x, 32);
  const ops::GroupMoments whole_gpu = ops::group_moments(ctx, on_gpu(x), 32);
  expect_moments_near(whole_gpu, whole_cpu);

  // Frames [0, 2) and [2, 6): to_device makes each slice a contiguous [64, n, 11, 13] tensor.
  const Tensor first = on_gpu(x.slice(1, 0, 2)), second = on_gpu(x.slice(1, 2, 6));
  ops::GroupMoments merged = ops::group_moments(ctx, first, 32);
  merged.merge(ops::group_moments(ctx, second, 32));
  expect_moments_near(merged, whole_cpu);

  // Applying the merged statistics chunk by chunk equals GroupNorm of the whole.
  Tensor expected = Tensor::empty(DType::F32, shape);
  ops::group_norm(ctx, x, 32, &weight, &bias, 1e-6f, true, expected);
  const Tensor gpu_weight = on_gpu(weight), gpu_bias = on_gpu(bias);
  Tensor whole = Tensor::empty(DType::F32, shape, Device::CUDA);
  ops::group_norm_apply(ctx, on_gpu(x), merged, &gpu_weight, &gpu_bias, 1e-6f, true, whole);
  EXPECT_LE(gpu_vs_cpu(whole, expected), kF32Tolerance);
  Tensor second_out = Tensor::empty(DType::F32, second.shape(), Device::CUDA);
  ops::group_norm_apply(ctx, second, merged, &gpu_weight, &gpu_bias, 1e-6f, true, second_out);
  EXPECT_LE(relative_l2(second_out.to_device(Device::CPU), expected.slice(1, 2, 6).clone()), kF32Tolerance);
}

TEST_F(CudaConvOps, UpsampleNearestBothModes) {
  const Tensor x = random_tensor({5, 3, 7, 9}, 1000);
  const Tensor gpu_x = on_gpu(x);
  struct Factors {
    int t, h, w;
    bool first_frame_alone;
  };
  for (const Factors f : {Factors{2, 2, 2, true}, Factors{2, 2, 2, false}, Factors{1, 2, 2, false},
                          Factors{1, 2, 2, true}, Factors{3, 1, 2, true}, Factors{1, 1, 1, false}}) {
    SCOPED_TRACE(::testing::Message() << f.t << "x" << f.h << "x" << f.w << " first frame alone "
                                      << f.first_frame_alone);
    const Shape shape = ops::upsample_nearest_shape(x.shape(), f.t, f.h, f.w, f.first_frame_alone);
    Tensor expected = Tensor::empty(DType::F32, shape);
    ops::upsample_nearest(ctx, x, f.t, f.h, f.w, f.first_frame_alone, expected);
    Tensor out = Tensor::empty(DType::F32, shape, Device::CUDA);
    ops::upsample_nearest(ctx, gpu_x, f.t, f.h, f.w, f.first_frame_alone, out);
    EXPECT_EQ(gpu_vs_cpu(out, expected), 0.0);  // data movement: exact
  }
}

TEST_F(CudaConvOps, PlaceStrided) {
  // The phases of an upsampling conv interleaved into the output; positions not written keep their values.
  const Tensor background = random_tensor({4, 9, 10, 12}, 1100);
  const Tensor part = random_tensor({4, 4, 5, 4}, 1101);
  const std::array<int64_t, 3> offset{1, 0, 2}, step{2, 2, 3};
  Tensor expected = background.clone();
  ops::place_strided(ctx, part, offset, step, expected);
  Tensor out = on_gpu(background);
  ops::place_strided(ctx, on_gpu(part), offset, step, out);
  EXPECT_EQ(gpu_vs_cpu(out, expected), 0.0);
}

}  // namespace
}  // namespace k5::test
