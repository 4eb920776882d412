// The int8 weight-only linear's kernels (linear_int8.cu), in a header so that the CPU test suite runs this same device
// code under the warp emulator (tests/backends/cuda_emulated/): the exact expansion of int8 weights to BF16 or F32,
// and the per-column scale and bias of the GEMM's result.
#pragma once

#include <cstdint>

#include "backends/cuda/row_grid.cuh"

namespace k5::cuda {

constexpr int kInt8Threads = 256;

__global__ void int8_to_bf16_kernel(const int8_t* in, uint16_t* out, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = uint16_t(__float_as_uint(float(in[i])) >> 16);  // exact: |v| <= 127 needs 7 significant bits
}

__global__ void int8_to_f32_kernel(const int8_t* in, float* out, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = float(in[i]);
}

// rows[r][j] = rows[r][j] * scales[j] + (bias ? bias[j] : 0), as the CPU.
__global__ void scale_columns_kernel(float* rows, int64_t stride, int64_t row_count, int64_t width, const float* scales,
                                     const float* bias) {
  for_each_row_element(row_count, width, [&](int64_t r, int64_t j) {
    float& value = rows[r * stride + j];
    value = value * scales[j] + (bias ? bias[j] : 0.0f);
  });
}

}  // namespace k5::cuda
