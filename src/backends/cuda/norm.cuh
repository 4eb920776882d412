// The normalisation and modulation kernels of norm.cu, in a header so that the CPU test suite runs this same device
// code under the warp emulator (tests/backends/cuda_emulated/). All float32; one block of kNormRowThreads threads
// per row, or one warp per RMSNorm row of at most kRmsNormWarpRowWidthLimit values. LayerNorm statistics take two
// passes (mean, then centred squares) as the CPU path does; RMSNorm one (the squares). Per-thread partial sums are
// combined in a tree, which keeps float accumulation close to the CPU's double sums.
#pragma once

#include <cstdint>

#include "backends/cuda/bf16.cuh"
#include "backends/cuda/block_reduce.cuh"
#include "backends/cuda/row_grid.cuh"

namespace k5::cuda {

constexpr int kNormRowThreads = 256;

// A [D] vector with an element stride (a strided view of a modulation vector), or absent.
struct DeviceVector {
  const float* data;
  int64_t stride;
  __device__ float operator[](int64_t i) const { return data[i * stride]; }
};

__device__ inline float row_mean(const float* row, int64_t width) {
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) sum += row[i];
  return block_sum(sum) / float(width);
}

__device__ inline float row_inverse_std(const float* row, int64_t width, float mean, float eps) {
  float squares = 0.0f;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    const float centred = row[i] - mean;
    squares += centred * centred;
  }
  return 1.0f / sqrtf(block_sum(squares) / float(width) + eps);
}

// out may alias x in all of these: the last pass reads and writes each element from the same thread.
__global__ void layer_norm_kernel(const float* x, int64_t x_stride, DeviceVector weight, DeviceVector bias, float eps,
                                  float* out, int64_t out_stride, int64_t width) {
  const float* row = x + blockIdx.x * x_stride;
  float* target = out + blockIdx.x * out_stride;
  const float mean = row_mean(row, width);
  const float inverse_std = row_inverse_std(row, width, mean, eps);
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    float value = (row[i] - mean) * inverse_std;
    if (weight.data) value *= weight[i];
    if (bias.data) value += bias[i];
    target[i] = value;
  }
}

__global__ void rms_norm_kernel(const float* x, int64_t x_stride, DeviceVector weight, float eps, float* out,
                                int64_t out_stride, int64_t width) {
  const float* row = x + blockIdx.x * x_stride;
  float* target = out + blockIdx.x * out_stride;
  float squares = 0.0f;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) squares += row[i] * row[i];
  const float inverse = 1.0f / sqrtf(block_sum(squares) / float(width) + eps);
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x)
    target[i] = weight.data ? row[i] * inverse * weight[i] : row[i] * inverse;
}

// Rows too narrow to keep a block busy (the models' per-head q/k norms: 64 or 128 values) take one warp each.
constexpr int64_t kRmsNormWarpRowWidthLimit = 512;
constexpr int kRmsNormWarpRowsPerBlock = 8;

__global__ void rms_norm_warp_rows_kernel(const float* x, int64_t x_stride, DeviceVector weight, float eps, float* out,
                                          int64_t out_stride, int64_t rows, int64_t width) {
  const int lane = int(threadIdx.x % 32), warp = int(threadIdx.x / 32);
  for (int64_t r = int64_t(blockIdx.x) * kRmsNormWarpRowsPerBlock + warp; r < rows;
       r += int64_t(gridDim.x) * kRmsNormWarpRowsPerBlock) {
    const float* row = x + r * x_stride;
    float* target = out + r * out_stride;
    float squares = 0.0f;
    for (int64_t i = lane; i < width; i += 32) squares += row[i] * row[i];
    const float inverse = 1.0f / sqrtf(warp_reduce(squares, SumOp<float>{}) / float(width) + eps);
    for (int64_t i = lane; i < width; i += 32)
      target[i] = weight.data ? row[i] * inverse * weight[i] : row[i] * inverse;
  }
}

// out: F32, or BF16 (uint16_t) rows of the rounded results.
template <typename Out>
__global__ void scale_shift_norm_kernel(const float* x, int64_t x_stride, DeviceVector scale, DeviceVector shift,
                                        float eps, Out* out, int64_t out_stride, int64_t width) {
  const float* row = x + blockIdx.x * x_stride;
  Out* target = out + blockIdx.x * out_stride;
  const float mean = row_mean(row, width);
  const float inverse_std = row_inverse_std(row, width, mean, eps);
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x)
    store(&target[i], (row[i] - mean) * inverse_std * (1.0f + scale[i]) + shift[i]);
}

__global__ void gated_residual_kernel(float* x, int64_t x_stride, const float* h, int64_t h_stride, DeviceVector gate,
                                      int64_t rows, int64_t width) {
  for_each_row_element(rows, width, [&](int64_t row, int64_t column) {
    x[row * x_stride + column] += gate[column] * h[row * h_stride + column];
  });
}

}  // namespace k5::cuda
