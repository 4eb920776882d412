// GroupNorm's kernels (group_norm.cu), in a header so that the CPU test suite runs this same device code under the warp
// emulator (tests/backends/cuda_emulated/). Statistics in double: each pass splits every group into slices, one block
// per (slice, group) writing a partial sum, and a second kernel adds a group's partials in a fixed order.
#pragma once

#include <cmath>
#include <cstdint>

#include "backends/cuda/block_reduce.cuh"

namespace k5::cuda {

constexpr int kGroupNormThreads = 256;
constexpr int64_t kGroupNormMaxSlices = 1024;  // per group: bounds the partial-sum buffer
constexpr int64_t kGroupNormMinSliceValues = 16 * kGroupNormThreads;

// partial[g * slices + s] = sum over slice s of group g of x (mean == null) or of (x - mean[g])^2.
// Grid: (slices, groups).
__global__ void group_partial_sums_kernel(const float* x, int64_t count, int64_t slice_length, const double* mean,
                                          double* partial) {
  const int64_t g = blockIdx.y, s = blockIdx.x;
  const float* values = x + g * count;
  const int64_t begin = s * slice_length, end = begin + slice_length < count ? begin + slice_length : count;
  double sum = 0.0;
  if (mean) {
    const double centre = mean[g];
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
      const double deviation = double(values[i]) - centre;
      sum += deviation * deviation;
    }
  } else {
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) sum += double(values[i]);
  }
  sum = block_sum(sum);
  if (threadIdx.x == 0) partial[g * gridDim.x + s] = sum;
}

// result[g] = factor * sum of group g's `slices` partials. One block per group.
__global__ void group_finish_kernel(const double* partial, int64_t slices, double factor, double* result) {
  double sum = 0.0;
  for (int64_t s = threadIdx.x; s < slices; s += blockDim.x) sum += partial[blockIdx.x * slices + s];
  sum = block_sum(sum);
  if (threadIdx.x == 0) result[blockIdx.x] = sum * factor;
}

// Per channel: y = x * scale[c] + shift[c], computed exactly as the CPU does (double inverse std, rounded to
// float, then the float affine).
__global__ void group_affine_kernel(const double* mean, const double* m2, double count, float eps, const float* gamma,
                                    const float* beta, int64_t channels, int64_t group_channels, float* scale,
                                    float* shift) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= channels) return;
  const int64_t g = c / group_channels;
  const double inverse_std = 1.0 / sqrt(m2[g] / count + double(eps));
  const float channel_scale = float(inverse_std) * (gamma ? gamma[c] : 1.0f);
  scale[c] = channel_scale;
  shift[c] = (beta ? beta[c] : 0.0f) - float(mean[g]) * channel_scale;
}

// out may alias x: each element is read and written by the same thread.
template <bool silu>
__global__ void group_norm_apply_kernel(const float* x, const float* scale, const float* shift, int64_t positions,
                                        int64_t total, float* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i / positions;
    const float y = x[i] * scale[c] + shift[c];
    out[i] = silu ? y / (1.0f + expf(-y)) : y;
  }
}

}  // namespace k5::cuda
