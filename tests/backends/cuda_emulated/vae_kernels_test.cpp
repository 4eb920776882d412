// The CUDA backend's VAE kernels run on the CPU under the warp emulator against the CPU ops: the convolution's gather
// (im2col with zero and replicate padding, strides, chunks of positions) and prefill, GroupNorm's sliced double
// statistics and affine, nearest upsampling, strided placement, the tile copy and blend, and the mid-block
// attention's softmax. tests/backends/cuda/conv_test.cpp and vae_test.cpp check the same ops on a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "backends/cuda/launchers.h"
#include "backends/cuda_emulated/emulated_kernels.h"
#include "core/context.h"
#include "ops/conv.h"
#include "ops/elementwise.h"
#include "support/compare.h"
#include "support/random.h"

namespace k5::test {
namespace {

using emulation::Dim3;
using emulation::launch;

// conv3d as conv.cu runs it: the output prefilled with the bias (and the residual), then per chunk of `chunk`
// positions an im2col of their patches and out[:, chunk] += weight x columns (here in double, on the CPU). Fewer
// gather blocks down than patch rows, so each thread walks several rows.
Tensor emulated_conv3d(const Tensor& x, const Tensor& weight, const Tensor* bias, const ops::ConvGeometry& g,
                       const Tensor* residual, int64_t chunk) {
  const Shape shape = ops::conv3d_output_shape(x.shape(), weight.shape(), g);
  Tensor out = residual ? residual->clone() : Tensor::empty(DType::F32, shape);
  const int64_t out_channels = weight.size(0), plane = shape[1] * shape[2] * shape[3];
  const int64_t reduction = weight.numel() / out_channels;
  // One block: each thread prefills several outputs (the launcher's grid gives each thread one).
  launch({1}, {cuda::kConvThreads}, cuda::prefill_kernel, bias ? bias->data<float>() : nullptr, residual != nullptr,
         out.data<float>(), out_channels, plane);
  const cuda::ConvShape s = cuda::conv_shape(x.shape(), weight.shape(), shape, g);
  std::vector<float> columns;
  for (int64_t p0 = 0; p0 < plane; p0 += chunk) {
    const int n = int(std::min(chunk, plane - p0));
    columns.assign(size_t(reduction * n), -1.0f);
    launch({unsigned((n + cuda::kConvThreads - 1) / cuda::kConvThreads), unsigned(std::min<int64_t>(reduction, 5))},
           {cuda::kConvThreads}, cuda::im2col_kernel, x.data<float>(), s, p0, n, int(reduction), columns.data());
    for (int64_t o = 0; o < out_channels; ++o)
      for (int j = 0; j < n; ++j) {
        double sum = 0.0;
        for (int64_t r = 0; r < reduction; ++r)
          sum += double(weight.data<float>()[o * reduction + r]) * columns[size_t(r * n + j)];
        out.data<float>()[o * plane + p0 + j] += float(sum);
      }
  }
  return out;
}

TEST(EmulatedCudaConv, GatherAndPrefillGiveTheCpuConv) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  struct Case {
    Shape x, weight;
    ops::ConvGeometry geometry;
    bool bias, accumulate;
    int64_t chunk;
  };
  ops::ConvGeometry zero_padded_strided{.stride = {1, 2, 2}, .pad_before = {0, 1, 1}, .pad_after = {0, 1, 0}};
  const std::vector<Case> cases = {
      {{3, 4, 6, 7}, {5, 3, 3, 3, 3}, ops::causal_conv_geometry(3, 3, 3), true, false, 37},
      {{3, 5, 6, 7}, {4, 3, 3, 3, 3}, ops::causal_conv_geometry(3, 3, 3, {2, 2, 2}), false, true, 1000},
      {{2, 1, 9, 8}, {3, 2, 1, 3, 3}, zero_padded_strided, true, true, 11},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << "weight " << c.weight[0] << "x" << c.weight[1] << "x" << c.weight[2] << "x"
                                      << c.weight[3] << "x" << c.weight[4] << " chunk " << c.chunk);
    const Tensor x = random_tensor(c.x, 61), weight = random_tensor(c.weight, 62, 0.3f),
                 bias = random_tensor({c.weight[0]}, 63);
    const Shape shape = ops::conv3d_output_shape(x.shape(), weight.shape(), c.geometry);
    const Tensor residual = random_tensor(shape, 64);
    Tensor expected = residual.clone();
    ops::conv3d(ctx, x, weight, c.bias ? &bias : nullptr, c.geometry, expected, c.accumulate);
    const Tensor out =
        emulated_conv3d(x, weight, c.bias ? &bias : nullptr, c.geometry, c.accumulate ? &residual : nullptr, c.chunk);
    EXPECT_LE(relative_l2(out, expected), 1e-6);
  }
}

// GroupNorm as group_norm.cu runs it, with slices of `slice_length` values (the GPU's are at least 4096): partial
// sums, the fixed-order finish, the per-channel affine, then the (SiLU) apply.
Tensor emulated_group_norm(const Tensor& x, int groups, const Tensor* weight, const Tensor* bias, bool silu,
                           int64_t slice_length) {
  const int64_t channels = x.size(0), count = x.numel() / groups;
  const int64_t slices = (count + slice_length - 1) / slice_length;
  std::vector<double> partial(size_t(groups * slices)), mean(static_cast<size_t>(groups)),
      m2(static_cast<size_t>(groups));
  const Dim3 grid{unsigned(slices), unsigned(groups)}, block{cuda::kGroupNormThreads};
  launch(grid, block, cuda::group_partial_sums_kernel, x.data<float>(), count, slice_length, nullptr, partial.data());
  launch({unsigned(groups)}, block, cuda::group_finish_kernel, partial.data(), slices, 1.0 / double(count),
         mean.data());
  launch(grid, block, cuda::group_partial_sums_kernel, x.data<float>(), count, slice_length, mean.data(),
         partial.data());
  launch({unsigned(groups)}, block, cuda::group_finish_kernel, partial.data(), slices, 1.0, m2.data());
  std::vector<float> scale(static_cast<size_t>(channels)), shift(static_cast<size_t>(channels));
  launch({cuda::grid_stride_blocks(channels, cuda::kGroupNormThreads)}, block, cuda::group_affine_kernel, mean.data(),
         m2.data(), double(count), 1e-6f, weight ? weight->data<float>() : nullptr,
         bias ? bias->data<float>() : nullptr, channels, channels / groups, scale.data(), shift.data());
  Tensor out = Tensor::empty(DType::F32, x.shape());
  const auto apply = silu ? cuda::group_norm_apply_kernel<true> : cuda::group_norm_apply_kernel<false>;
  launch({3}, block, apply, x.data<float>(), scale.data(), shift.data(), x.numel() / channels, x.numel(),
         out.data<float>());
  return out;
}

TEST(EmulatedCudaGroupNorm, SlicedStatisticsGiveTheCpuGroupNorm) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  // 640 values per group of 2 channels: slices of 420 give the block's 256 threads a second turn.
  const Tensor x = random_tensor({8, 4, 8, 10}, 71, 2.0f);
  const Tensor weight = random_tensor({8}, 72), bias = random_tensor({8}, 73);
  for (const bool silu : {false, true})
    for (const int64_t slice_length : {int64_t(50), int64_t(420)}) {
      SCOPED_TRACE(::testing::Message() << "silu " << silu << " slice " << slice_length);
      Tensor expected = Tensor::empty(DType::F32, x.shape());
      ops::group_norm(ctx, x, 4, &weight, &bias, 1e-6f, silu, expected);
      EXPECT_LE(relative_l2(emulated_group_norm(x, 4, &weight, &bias, silu, slice_length), expected), 1e-6);
    }
  Tensor expected = Tensor::empty(DType::F32, x.shape());
  ops::group_norm(ctx, x, 2, nullptr, nullptr, 1e-6f, false, expected);
  EXPECT_LE(relative_l2(emulated_group_norm(x, 2, nullptr, nullptr, false, 64), expected), 1e-6);
}

TEST(EmulatedCudaUpsample, NearestAndStridedPlacementAreTheCpuOps) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  const Tensor x = random_tensor({3, 3, 4, 5}, 81);
  const cuda::VolumeExtent in{3, 4, 5};
  for (const bool first_frame_alone : {false, true}) {
    const Shape shape = ops::upsample_nearest_shape(x.shape(), 2, 2, 2, first_frame_alone);
    Tensor expected = Tensor::empty(DType::F32, shape), out = Tensor::empty(DType::F32, shape);
    ops::upsample_nearest(ctx, x, 2, 2, 2, first_frame_alone, expected);
    for (const unsigned blocks : {cuda::grid_stride_blocks(out.numel(), cuda::kUpsampleThreads), 2u}) {
      launch({blocks}, {cuda::kUpsampleThreads}, cuda::upsample_nearest_kernel, x.data<float>(), in, 2, 2, 2,
             first_frame_alone, cuda::VolumeExtent{shape[1], shape[2], shape[3]}, out.numel(), out.data<float>());
      EXPECT_EQ(relative_l2(out, expected), 0.0) << "first frame alone " << first_frame_alone;
    }
  }
  const Tensor background = random_tensor({3, 7, 9, 11}, 82);
  Tensor expected = background.clone(), out = background.clone();
  ops::place_strided(ctx, x, {1, 0, 1}, {2, 2, 2}, expected);
  launch({1}, {64}, cuda::place_strided_kernel, x.data<float>(), in, cuda::VolumeExtent{1, 0, 1},
         cuda::VolumeExtent{2, 2, 2}, cuda::VolumeExtent{7, 9, 11}, x.numel(), out.data<float>());
  EXPECT_EQ(relative_l2(out, expected), 0.0);
}

TEST(EmulatedCudaTiling, CopyAndBlendAreTheCpuOps) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  // A permuted, sliced source into a sliced destination: both strided.
  const Tensor source = random_tensor({4, 6, 5, 3}, 91).permute({3, 0, 2, 1}).slice(3, 1, 5);
  const Tensor background = random_tensor({3, 4, 7, 6}, 92);
  Tensor expected = background.clone(), out = background.clone();
  Tensor expected_view = expected.slice(2, 2, 7).slice(3, 1, 5), out_view = out.slice(2, 2, 7).slice(3, 1, 5);
  ops::copy(ctx, source, expected_view);
  launch({2}, {64}, cuda::copy_kernel, source.data<float>(), cuda::copy_view(source), out_view.data<float>(),
         cuda::copy_view(out_view), source.numel());
  EXPECT_EQ(relative_l2(out, expected), 0.0);

  for (const int axis : {1, 2, 3}) {
    SCOPED_TRACE(axis);
    const Tensor previous = random_tensor({2, 5, 6, 7}, 93);
    const Tensor tile = random_tensor({2, 5, 6, 7}, 94);
    const int64_t extent = 3;
    Tensor expected_tile = tile.clone(), out_tile = tile.clone();
    ops::blend(ctx, previous, expected_tile, axis, extent);
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < axis; ++d) outer *= tile.size(d);
    for (int d = axis + 1; d < 4; ++d) inner *= tile.size(d);
    launch({1}, {64}, cuda::blend_kernel, previous.data<float>(), previous.size(axis), out_tile.data<float>(),
           tile.size(axis), outer, extent, inner);
    EXPECT_LE(relative_l2(out_tile, expected_tile), 1e-7);
  }
}

TEST(EmulatedCudaVaeAttention, QuerySoftmaxFollowsTheCpuSoftmax) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  for (const int64_t visible : {7, 300}) {
    const int64_t queries = 3;
    const float scale = 0.125f;
    const Tensor scores = random_tensor({queries, visible}, uint32_t(visible), 8.0f);
    Tensor scaled = Tensor::empty(DType::F32, scores.shape()), expected = Tensor::empty(DType::F32, scores.shape());
    ops::scale(ctx, scores, scale, scaled);
    ops::softmax(ctx, scaled, expected);
    Tensor out = scores.clone();
    launch({unsigned(queries)}, {cuda::kFrameSoftmaxThreads}, cuda::query_softmax_kernel, out.data<float>(), visible,
           scale);
    EXPECT_LE(relative_l2(out, expected), 1e-6) << visible << " visible keys";
  }
}

}  // namespace
}  // namespace k5::test
