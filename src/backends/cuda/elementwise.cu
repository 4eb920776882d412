// Element-wise ops and softmax (the CUDA side of src/ops/elementwise.h), plus the small conversions the
// GEMM wrapper needs. Simple grid-stride kernels: these are bandwidth-bound, and the fused versions belong in
// the ops that use them. Functions use full-precision expf/erff/tanhf (no fast math) to match the CPU path.
#include <cstring>

#include "backends/cpu/rows.h"
#include "backends/cuda/bf16.cuh"
#include "backends/cuda/block_reduce.cuh"
#include "backends/cuda/check.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"
#include "backends/cuda/row_grid.cuh"
#include "ops/operands.h"

namespace k5::cuda {

namespace {

constexpr int kThreads = 256;

template <Unary function>
__device__ float apply(float x) {
  if constexpr (function == Unary::silu) return x / (1.0f + expf(-x));
  if constexpr (function == Unary::gelu_erf) return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
  if constexpr (function == Unary::gelu_tanh)
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
  if constexpr (function == Unary::quick_gelu) return x / (1.0f + expf(-1.702f * x));
  return x;
}

// in/out: rows x width, rows `stride` apart (a contiguous tensor is one row). out (F32 or BF16) may alias in.
template <Unary function, typename Out>
__global__ void unary_kernel(const float* in, int64_t in_stride, Out* out, int64_t out_stride, int64_t rows,
                             int64_t width) {
  for_each_row_element(rows, width, [&](int64_t row, int64_t column) {
    store(&out[row * out_stride + column], apply<function>(in[row * in_stride + column]));
  });
}

template <typename Out>
void launch_unary(Unary function, const float* in, int64_t in_stride, Out* out, int64_t out_stride, int64_t rows,
                  int64_t width) {
  if (rows * width == 0) return;
  const dim3 blocks = row_grid(rows, width, kThreads);
  switch (function) {
    case Unary::silu:
      unary_kernel<Unary::silu><<<blocks, kThreads>>>(in, in_stride, out, out_stride, rows, width);
      break;
    case Unary::gelu_erf:
      unary_kernel<Unary::gelu_erf><<<blocks, kThreads>>>(in, in_stride, out, out_stride, rows, width);
      break;
    case Unary::gelu_tanh:
      unary_kernel<Unary::gelu_tanh><<<blocks, kThreads>>>(in, in_stride, out, out_stride, rows, width);
      break;
    case Unary::quick_gelu:
      unary_kernel<Unary::quick_gelu><<<blocks, kThreads>>>(in, in_stride, out, out_stride, rows, width);
      break;
  }
  K5_CUDA_CHECK_LAUNCH("unary_kernel");
}

__global__ void swiglu_kernel(const float* gate, const float* up, float* out, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = apply<Unary::silu>(gate[i]) * up[i];
}

// b repeats every `period` elements (period == count: same shape as a).
template <Binary function>
__global__ void binary_kernel(const float* a, const float* b, int64_t period, float* out, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const float right = b[period == count ? i : i % period];
    out[i] = function == Binary::add ? a[i] + right : a[i] * right;
  }
}

__global__ void scale_kernel(const float* in, float factor, float* out, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = in[i] * factor;
}

// One block per row: max, sum of exp(x - max), then exp(x - max) / sum. out may alias in (each element is
// read and written by the same thread in the last pass).
__global__ void softmax_kernel(const float* in, int64_t in_stride, float* out, int64_t out_stride, int64_t width) {
  const float* row = in + blockIdx.x * in_stride;
  float* target = out + blockIdx.x * out_stride;
  float maximum = -INFINITY;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) maximum = fmaxf(maximum, row[i]);
  maximum = block_max(maximum);
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) sum += expf(row[i] - maximum);
  const float inverse = 1.0f / block_sum(sum);
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) target[i] = expf(row[i] - maximum) * inverse;
}

__global__ void round_to_bf16_kernel(const float* in, int64_t in_stride, uint16_t* out, int64_t rows, int64_t width) {
  for_each_row_element(rows, width, [&](int64_t row, int64_t column) {
    out[row * width + column] = to_bf16(in[row * in_stride + column]);
  });
}

__global__ void add_bias_kernel(const float* bias, float* rows, int64_t stride, int64_t row_count, int64_t width) {
  for_each_row_element(row_count, width,
                       [&](int64_t row, int64_t column) { rows[row * stride + column] += bias[column]; });
}

__global__ void bf16_to_f32_kernel(const uint16_t* in, float* out, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = __uint_as_float(uint32_t(in[i]) << 16);
}

using ops::check_same_shape;
using ops::contiguous_f32;

}  // namespace

void unary_rows(Unary function, const float* in, int64_t in_stride, float* out, int64_t out_stride, int64_t rows,
                int64_t width) {
  launch_unary(function, in, in_stride, out, out_stride, rows, width);
}

void round_rows_to_bf16(const float* in, int64_t in_stride, uint16_t* out, int64_t rows, int64_t width) {
  if (rows * width == 0) return;
  round_to_bf16_kernel<<<row_grid(rows, width, kThreads), kThreads>>>(in, in_stride, out, rows, width);
  K5_CUDA_CHECK_LAUNCH("round_to_bf16_kernel");
}

void add_bias_rows(const float* bias, float* rows, int64_t stride, int64_t row_count, int64_t width) {
  if (row_count * width == 0) return;
  add_bias_kernel<<<row_grid(row_count, width, kThreads), kThreads>>>(bias, rows, stride, row_count, width);
  K5_CUDA_CHECK_LAUNCH("add_bias_kernel");
}

void bf16_to_f32(const uint16_t* in, float* out, int64_t count) {
  if (count == 0) return;
  bf16_to_f32_kernel<<<grid_stride_blocks(count, kThreads), kThreads>>>(in, out, count);
  K5_CUDA_CHECK_LAUNCH("bf16_to_f32_kernel");
}

void unary(Context&, Unary function, const Tensor& x, Tensor& out) {
  check_same_shape(x, out, "unary op");
  const float* in = contiguous_f32(x, "unary op input");
  if (out.dtype() == DType::BF16) {
    K5_CHECK(out.is_contiguous(), "unary op output: expected a contiguous tensor, got ", out.describe());
    return launch_unary(function, in, x.numel(), out.data<uint16_t>(), x.numel(), 1, x.numel());
  }
  launch_unary(function, in, x.numel(), contiguous_f32(out, "unary op output"), x.numel(), 1, x.numel());
}

void swiglu(Context&, const Tensor& gate, const Tensor& up, Tensor& out) {
  check_same_shape(gate, up, "swiglu");
  check_same_shape(gate, out, "swiglu");
  const float* g = contiguous_f32(gate, "swiglu gate");
  const float* u = contiguous_f32(up, "swiglu up");
  float* result = contiguous_f32(out, "swiglu output");
  const int64_t count = gate.numel();
  if (count == 0) return;
  swiglu_kernel<<<grid_stride_blocks(count, kThreads), kThreads>>>(g, u, result, count);
  K5_CUDA_CHECK_LAUNCH("swiglu_kernel");
}

void binary(Context&, Binary function, const Tensor& a, const Tensor& b, Tensor& out) {
  const auto [left, right, result, count, period] = ops::binary_operands(a, b, out);
  if (count == 0) return;
  if (function == Binary::add)
    binary_kernel<Binary::add><<<grid_stride_blocks(count, kThreads), kThreads>>>(left, right, period, result, count);
  else
    binary_kernel<Binary::mul><<<grid_stride_blocks(count, kThreads), kThreads>>>(left, right, period, result, count);
  K5_CUDA_CHECK_LAUNCH("binary_kernel");
}

void scale(Context&, const Tensor& x, float factor, Tensor& out) {
  check_same_shape(x, out, "scale");
  const float* in = contiguous_f32(x, "scale input");
  float* result = contiguous_f32(out, "scale output");
  if (x.numel() == 0) return;
  scale_kernel<<<grid_stride_blocks(x.numel(), kThreads), kThreads>>>(in, factor, result, x.numel());
  K5_CUDA_CHECK_LAUNCH("scale_kernel");
}

void softmax(Context&, const Tensor& x, Tensor& out) {
  check_same_shape(x, out, "softmax");
  const cpu::Rows in = cpu::rows_of(x, "softmax input"), result = cpu::rows_of(out, "softmax output");
  if (in.count == 0 || in.width == 0) return;
  K5_CHECK(in.count < (int64_t(1) << 31), "softmax: ", in.count, " rows is more than one launch takes");
  softmax_kernel<<<unsigned(in.count), kThreads>>>(in.data, in.stride, result.data, result.stride, in.width);
  K5_CUDA_CHECK_LAUNCH("softmax_kernel");
}

}  // namespace k5::cuda
