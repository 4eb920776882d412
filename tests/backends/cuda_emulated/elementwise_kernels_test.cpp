// The CUDA backend's element-wise, softmax, normalisation, int8-expansion and block-mean kernels run on the CPU under
// the warp emulator against the CPU ops: their indexing (flat and 2-D grid-stride loops, strided rows), block and
// warp reductions and BF16 stores run in every CI run. tests/backends/cuda/ops_test.cpp checks the same ops on a GPU.
// Grids are the launchers' own, and also smaller ones, so that every grid-stride loop takes a second turn.
#include <gtest/gtest.h>

#include <cstring>
#include <utility>
#include <vector>

#include "backends/cuda/launchers.h"
#include "backends/cuda_emulated/emulated_kernels.h"
#include "core/context.h"
#include "core/dtype.h"
#include "ops/elementwise.h"
#include "ops/linear.h"
#include "ops/linear_int8.h"
#include "ops/norm.h"
#include "ops/pool.h"
#include "support/compare.h"
#include "support/random.h"

namespace k5::test {
namespace {

using emulation::Dim3;
using emulation::launch;

// The CPU takes its sums in double and may contract into FMAs or vectorise exp; the kernels sum float partials in a
// tree with CUDA's (here glibc's) expf.
constexpr double kTolerance = 2e-6;

// The grids a test tries for `rows` x `width` elements: the launcher's row_grid, and one block for all.
std::vector<Dim3> row_grids(int64_t rows, int64_t width, int threads) {
  return {cuda::row_grid<Dim3>(rows, width, threads), Dim3{1, 1}};
}

std::vector<unsigned> flat_grids(int64_t count, int threads) { return {cuda::grid_stride_blocks(count, threads), 1}; }

// x: a [rows, width] view with rows `width + 7` apart.
Tensor strided_rows(int64_t rows, int64_t width, uint32_t seed, float scale = 2.0f) {
  return random_tensor({rows, width + 7}, seed, scale).slice(1, 0, width);
}

Tensor bf16_bits_to_f32(const std::vector<uint16_t>& bits, const Shape& shape) {
  std::vector<float> values(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) values[i] = bf16_to_f32(bits[i]);
  return Tensor::from_f32(values, shape);
}

// The CPU op for one activation, on contiguous tensors. gelu_tanh has no op of its own: the linear's activation,
// after an exact identity product.
Tensor cpu_activation(Context& ctx, cuda::Unary function, const Tensor& x) {
  Tensor out = Tensor::empty(DType::F32, x.shape());
  switch (function) {
    case cuda::Unary::silu:
      ops::silu(ctx, x, out);
      break;
    case cuda::Unary::gelu_erf:
      ops::gelu(ctx, x, out);
      break;
    case cuda::Unary::quick_gelu:
      ops::quick_gelu(ctx, x, out);
      break;
    case cuda::Unary::gelu_tanh: {
      std::vector<float> identity(size_t(x.size(1) * x.size(1)), 0.0f);
      for (int64_t i = 0; i < x.size(1); ++i) identity[size_t(i * x.size(1) + i)] = 1.0f;
      ops::linear(ctx, x, Tensor::from_f32(identity, {x.size(1), x.size(1)}), nullptr, out, ops::Activation::gelu_tanh);
      break;
    }
  }
  return out;
}

template <cuda::Unary kFunction>
void check_activation(Context& ctx) {
  const int64_t rows = 5, width = 300;
  const Tensor x = strided_rows(rows, width, 11 + unsigned(kFunction));
  const Tensor expected = cpu_activation(ctx, kFunction, x.contiguous());
  for (const Dim3 grid : row_grids(rows, width, cuda::kElementwiseThreads)) {
    Tensor out = Tensor::empty(DType::F32, {rows, width});
    launch(grid, {cuda::kElementwiseThreads}, cuda::unary_kernel<kFunction, float>, x.data<float>(), x.stride(0),
           out.data<float>(), width, rows, width);
    EXPECT_LE(relative_l2(out, expected), kTolerance);
    std::vector<uint16_t> bits(size_t(rows * width));
    launch(grid, {cuda::kElementwiseThreads}, cuda::unary_kernel<kFunction, uint16_t>, x.data<float>(), x.stride(0),
           bits.data(), width, rows, width);
    EXPECT_EQ(relative_l2(bf16_bits_to_f32(bits, {rows, width}), out.to(DType::BF16).to(DType::F32)), 0.0)
        << "the BF16 store should round the float32 result to nearest even";
  }
}

TEST(EmulatedCudaElementwise, ActivationsFollowTheCpuOps) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  check_activation<cuda::Unary::silu>(ctx);
  check_activation<cuda::Unary::gelu_erf>(ctx);
  check_activation<cuda::Unary::gelu_tanh>(ctx);
  check_activation<cuda::Unary::quick_gelu>(ctx);
}

TEST(EmulatedCudaElementwise, SwigluBinaryAndScaleFollowTheCpuOps) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  const int64_t rows = 9, width = 70, count = rows * width;
  const Tensor a = random_tensor({rows, width}, 1), b = random_tensor({rows, width}, 2),
               row = random_tensor({width}, 3);
  Tensor expected = Tensor::empty(DType::F32, {rows, width});
  for (const unsigned blocks : flat_grids(count, cuda::kElementwiseThreads)) {
    Tensor out = Tensor::empty(DType::F32, {rows, width});
    launch({blocks}, {cuda::kElementwiseThreads}, cuda::swiglu_kernel, a.data<float>(), b.data<float>(),
           out.data<float>(), count);
    ops::swiglu(ctx, a, b, expected);
    EXPECT_LE(relative_l2(out, expected), kTolerance);

    for (const Tensor* right : {&b, &row}) {
      const int64_t period = right->numel();
      launch({blocks}, {cuda::kElementwiseThreads}, cuda::binary_kernel<cuda::Binary::add>, a.data<float>(),
             right->data<float>(), period, out.data<float>(), count);
      ops::add(ctx, a, *right, expected);
      EXPECT_EQ(relative_l2(out, expected), 0.0) << "add, period " << period;
      launch({blocks}, {cuda::kElementwiseThreads}, cuda::binary_kernel<cuda::Binary::mul>, a.data<float>(),
             right->data<float>(), period, out.data<float>(), count);
      ops::mul(ctx, a, *right, expected);
      EXPECT_EQ(relative_l2(out, expected), 0.0) << "mul, period " << period;
    }

    launch({blocks}, {cuda::kElementwiseThreads}, cuda::scale_kernel, a.data<float>(), 0.37f, out.data<float>(), count);
    ops::scale(ctx, a, 0.37f, expected);
    EXPECT_EQ(relative_l2(out, expected), 0.0);
  }
}

TEST(EmulatedCudaElementwise, SoftmaxFollowsTheCpuOp) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  for (const int64_t width : {5, 64, 1000}) {
    SCOPED_TRACE(width);
    const int64_t rows = 3;
    const Tensor x = strided_rows(rows, width, uint32_t(width), 4.0f);
    Tensor expected = Tensor::empty(DType::F32, {rows, width}), out = Tensor::empty(DType::F32, {rows, width});
    ops::softmax(ctx, x.contiguous(), expected);
    launch({unsigned(rows)}, {cuda::kElementwiseThreads}, cuda::softmax_kernel, x.data<float>(), x.stride(0),
           out.data<float>(), width, width);
    EXPECT_LE(relative_l2(out, expected), kTolerance);
  }
}

TEST(EmulatedCudaElementwise, ConversionsAndBiasAreExact) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  const int64_t rows = 4, width = 300;
  const Tensor x = strided_rows(rows, width, 21);
  const Tensor bias = random_tensor({width}, 22);
  const Tensor rounded = x.contiguous().to(DType::BF16);
  for (const Dim3 grid : row_grids(rows, width, cuda::kElementwiseThreads)) {
    std::vector<uint16_t> bits(size_t(rows * width));
    launch(grid, {cuda::kElementwiseThreads}, cuda::round_to_bf16_kernel, x.data<float>(), x.stride(0), bits.data(),
           rows, width);
    EXPECT_EQ(std::memcmp(bits.data(), rounded.data<uint16_t>(), bits.size() * 2), 0);

    Tensor widened = Tensor::empty(DType::F32, {rows, width});
    for (const unsigned blocks : flat_grids(rows * width, cuda::kElementwiseThreads)) {
      launch({blocks}, {cuda::kElementwiseThreads}, cuda::bf16_to_f32_kernel, rounded.data<uint16_t>(),
             widened.data<float>(), rows * width);
      EXPECT_EQ(relative_l2(widened, rounded.to(DType::F32)), 0.0);
    }

    Tensor sum = x.clone();
    launch(grid, {cuda::kElementwiseThreads}, cuda::add_bias_kernel, bias.data<float>(), sum.data<float>(),
           sum.stride(0), rows, width);
    Tensor expected = Tensor::empty(DType::F32, {rows, width});
    ops::add(ctx, x.contiguous(), bias, expected);
    EXPECT_EQ(relative_l2(sum.contiguous(), expected), 0.0);
  }
}

TEST(EmulatedCudaNorm, LayerAndRmsNormFollowTheCpuOps) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  // 64 and 128: the models' per-head RMSNorm (one warp per row); 600: a block per row.
  for (const int64_t width : {64, 128, 200, 600}) {
    SCOPED_TRACE(width);
    const int64_t rows = 11;
    const Tensor x = strided_rows(rows, width, uint32_t(width) + 1, 3.0f);
    const Tensor weight = random_tensor({width}, 2), bias = random_tensor({width}, 3);
    const cuda::DeviceVector gamma{weight.data<float>(), 1}, beta{bias.data<float>(), 1}, none{nullptr, 1};
    for (const bool affine : {false, true}) {
      Tensor expected = Tensor::empty(DType::F32, {rows, width}), out = Tensor::empty(DType::F32, {rows, width});
      ops::layer_norm(ctx, x.contiguous(), affine ? &weight : nullptr, affine ? &bias : nullptr, 1e-5f, expected);
      launch({unsigned(rows)}, {cuda::kNormRowThreads}, cuda::layer_norm_kernel, x.data<float>(), x.stride(0),
             affine ? gamma : none, affine ? beta : none, 1e-5f, out.data<float>(), width, width);
      EXPECT_LE(relative_l2(out, expected), kTolerance) << "layer_norm, affine " << affine;

      ops::rms_norm(ctx, x.contiguous(), affine ? &weight : nullptr, 1e-6f, expected);
      if (width <= cuda::kRmsNormWarpRowWidthLimit) {
        for (const unsigned blocks : {cuda::grid_stride_blocks(rows, cuda::kRmsNormWarpRowsPerBlock), 1u}) {
          launch({blocks}, {32 * cuda::kRmsNormWarpRowsPerBlock}, cuda::rms_norm_warp_rows_kernel, x.data<float>(),
                 x.stride(0), affine ? gamma : none, 1e-6f, out.data<float>(), width, rows, width);
          EXPECT_LE(relative_l2(out, expected), kTolerance) << "rms_norm (warp rows), affine " << affine;
        }
      }
      launch({unsigned(rows)}, {cuda::kNormRowThreads}, cuda::rms_norm_kernel, x.data<float>(), x.stride(0),
             affine ? gamma : none, 1e-6f, out.data<float>(), width, width);
      EXPECT_LE(relative_l2(out, expected), kTolerance) << "rms_norm (block rows), affine " << affine;
    }
  }
}

TEST(EmulatedCudaNorm, ModulationOpsFollowTheCpuOps) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  const int64_t rows = 6, width = 320;
  const Tensor x = strided_rows(rows, width, 31, 3.0f);
  // scale, shift and gate: strided views of one modulation vector, as the DiT slices them.
  const Tensor modulation = random_tensor({width, 3}, 32, 0.5f);
  const Tensor scale = modulation.select(1, 0), shift = modulation.select(1, 1), gate = modulation.select(1, 2);
  const cuda::DeviceVector scale_vector{scale.data<float>(), scale.stride(0)};
  const cuda::DeviceVector shift_vector{shift.data<float>(), shift.stride(0)};
  const cuda::DeviceVector gate_vector{gate.data<float>(), gate.stride(0)};

  Tensor expected = Tensor::empty(DType::F32, {rows, width}), out = Tensor::empty(DType::F32, {rows, width});
  ops::scale_shift_norm(ctx, x.contiguous(), scale, shift, 1e-6f, expected);
  launch({unsigned(rows)}, {cuda::kNormRowThreads}, cuda::scale_shift_norm_kernel<float>, x.data<float>(), x.stride(0),
         scale_vector, shift_vector, 1e-6f, out.data<float>(), width, width);
  EXPECT_LE(relative_l2(out, expected), kTolerance);
  std::vector<uint16_t> bits(size_t(rows * width));
  launch({unsigned(rows)}, {cuda::kNormRowThreads}, cuda::scale_shift_norm_kernel<uint16_t>, x.data<float>(),
         x.stride(0), scale_vector, shift_vector, 1e-6f, bits.data(), width, width);
  EXPECT_EQ(relative_l2(bf16_bits_to_f32(bits, {rows, width}), out.to(DType::BF16).to(DType::F32)), 0.0);

  const Tensor h = strided_rows(rows, width, 33);
  for (const Dim3 grid : row_grids(rows, width, 256)) {
    Tensor residual = x.clone(), expected_residual = x.contiguous();
    launch(grid, {256}, cuda::gated_residual_kernel, residual.data<float>(), residual.stride(0), h.data<float>(),
           h.stride(0), gate_vector, rows, width);
    ops::gated_residual(ctx, expected_residual, h.contiguous(), gate);
    EXPECT_LE(relative_l2(residual.contiguous(), expected_residual), 1e-7);
  }
}

// The int8 linear as linear_int8.cu runs it: weight rows expanded by the kernel, a GEMM (here the CPU's linear on the
// expanded rows), then the per-column scale and bias by the kernel; against the CPU's int8 linear.
TEST(EmulatedCudaInt8, ExpansionAndColumnScalesGiveTheCpuLinear) {
  const int64_t M = 5, N = 24, K = 40;
  const Tensor x = random_tensor({M, K}, 41), bias = random_tensor({N}, 42);
  for (const Precision precision : {Precision::fp32, Precision::bf16}) {
    SCOPED_TRACE(precision == Precision::bf16 ? "bf16" : "fp32");
    Context ctx({.threads = 2, .precision = precision});
    const ops::Int8Weight weight = ops::quantize_int8(ctx, random_tensor({N, K}, 43));
    const Tensor expected = ops::linear_int8(ctx, x, weight, &bias);

    Tensor expanded = Tensor::empty(precision == Precision::bf16 ? DType::BF16 : DType::F32, {N, K});
    if (precision == Precision::bf16)
      launch({1}, {cuda::kInt8Threads}, cuda::int8_to_bf16_kernel, weight.values.data<int8_t>(),
             expanded.data<uint16_t>(), N * K);
    else
      launch({1}, {cuda::kInt8Threads}, cuda::int8_to_f32_kernel, weight.values.data<int8_t>(), expanded.data<float>(),
             N * K);
    EXPECT_EQ(relative_l2(expanded.to(DType::F32), weight.values.to(DType::F32)), 0.0) << "the expansion is exact";

    const Tensor product = ops::linear(ctx, x, expanded);
    // The launcher's grid, and one warp for all: each thread then walks rows and columns.
    for (const auto& [grid, threads] :
         {std::pair{cuda::row_grid<Dim3>(M, N, cuda::kInt8Threads), cuda::kInt8Threads}, std::pair{Dim3{1, 1}, 32}}) {
      Tensor out = product.clone();
      launch(grid, {unsigned(threads)}, cuda::scale_columns_kernel, out.data<float>(), out.stride(0), M, N,
             weight.scales.data<float>(), bias.data<float>());
      EXPECT_LE(relative_l2(out, expected), kTolerance);
    }
  }
}

TEST(EmulatedCudaPool, BlockMeansAreTheCpuBits) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  const int64_t blocks = 3, block = 16, heads = 2, dim = 40;
  const Tensor x = random_tensor({blocks * block, heads, dim}, 51);
  Tensor expected = Tensor::empty(DType::F32, {heads, blocks, dim}),
         out = Tensor::empty(DType::F32, {heads, blocks, dim});
  ops::block_mean_pool(ctx, x, block, expected);
  const int64_t total = heads * blocks * dim;
  launch({unsigned((total + cuda::kBlockMeanPoolThreads - 1) / cuda::kBlockMeanPoolThreads)},
         {cuda::kBlockMeanPoolThreads}, cuda::block_mean_pool_kernel, x.data<float>(), x.stride(0), x.stride(1), heads,
         blocks, block, dim, out.data<float>());
  EXPECT_EQ(relative_l2(out, expected), 0.0);
}

}  // namespace
}  // namespace k5::test
