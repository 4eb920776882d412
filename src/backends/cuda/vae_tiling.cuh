// The VAE's tile-assembly kernels (vae_tiling.cu), in a header so that the CPU test suite runs this same device code
// under the warp emulator (tests/backends/cuda_emulated/): pure data movement, one thread per written element
// (grid-stride), consecutive threads on consecutive destination elements.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace k5::cuda {

constexpr int kTilingThreads = 256;
constexpr int kCopyMaxRank = 5;

// A strided view padded to kCopyMaxRank axes at the front (size 1, stride 0).
struct CopyView {
  int64_t size[kCopyMaxRank];
  int64_t stride[kCopyMaxRank];
};

inline CopyView copy_view(const Tensor& t) {
  CopyView v;
  const int pad = kCopyMaxRank - t.dim();
  for (int axis = 0; axis < kCopyMaxRank; ++axis) {
    v.size[axis] = axis < pad ? 1 : t.size(axis - pad);
    v.stride[axis] = axis < pad ? 0 : t.stride(axis - pad);
  }
  return v;
}

// destination[index] = source[index] for every index of the common shape (element offsets from the strides).
__global__ void copy_kernel(const float* source, CopyView from, float* destination, CopyView to, int64_t total) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rest = i, source_offset = 0, destination_offset = 0;
    for (int axis = kCopyMaxRank - 1; axis >= 0; --axis) {
      const int64_t index = rest % to.size[axis];
      rest /= to.size[axis];
      source_offset += index * from.stride[axis];
      destination_offset += index * to.stride[axis];
    }
    destination[destination_offset] = source[source_offset];
  }
}

// Both tiles viewed as [outer, length, inner]: tile[o, i, j] = previous[o, length_a - e + i, j] * (1 - i/e) +
// tile[o, i, j] * (i/e) for i < e, the ratios formed in double and applied in float as PyTorch does.
__global__ void blend_kernel(const float* previous, int64_t length_a, float* tile, int64_t length_b, int64_t outer,
                             int64_t extent, int64_t inner) {
  const int64_t total = outer * extent * inner;
  for (int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; n < total; n += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = n % inner, i = n / inner % extent, o = n / (inner * extent);
    const float keep = float(1.0 - double(i) / double(extent));
    const float take = float(double(i) / double(extent));
    float* target = tile + (o * length_b + i) * inner + j;
    *target = previous[(o * length_a + length_a - extent + i) * inner + j] * keep + *target * take;
  }
}

}  // namespace k5::cuda
