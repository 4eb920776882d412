// The element-wise and softmax kernels of elementwise.cu, in a header so that the CPU test suite runs this same
// device code under the warp emulator (tests/backends/cuda_emulated/). Grid-stride loops (flat, or over rows on a
// 2-D grid: row_grid.cuh); softmax takes one block per row. Full-precision expf/erff/tanhf (no fast math), as the
// CPU path.
#pragma once

#include <cmath>
#include <cstdint>

#include "backends/cuda/bf16.cuh"
#include "backends/cuda/block_reduce.cuh"
#include "backends/cuda/kernels.h"
#include "backends/cuda/row_grid.cuh"

namespace k5::cuda {

constexpr int kElementwiseThreads = 256;

template <Unary function>
__device__ float unary_value(float x) {
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
    store(&out[row * out_stride + column], unary_value<function>(in[row * in_stride + column]));
  });
}

__global__ void swiglu_kernel(const float* gate, const float* up, float* out, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = unary_value<Unary::silu>(gate[i]) * up[i];
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

}  // namespace k5::cuda
