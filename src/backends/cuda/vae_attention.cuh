// The VAE mid-block attention's softmax kernel (vae_attention.cu), in a header so that the CPU test suite runs this
// same device code under the warp emulator (tests/backends/cuda_emulated/).
#pragma once

#include <cmath>
#include <cstdint>

#include "backends/cuda/block_reduce.cuh"

namespace k5::cuda {

constexpr int kFrameSoftmaxThreads = 256;

// One block per query: its `visible` scores are contiguous. Softmax of scale * scores as the CPU: float max,
// float exp, double sum, multiplied by the float inverse.
__global__ void query_softmax_kernel(float* scores, int64_t visible, float scale) {
  float* row = scores + int64_t(blockIdx.x) * visible;
  float maximum = -INFINITY;
  for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) maximum = fmaxf(maximum, scale * row[j]);
  maximum = block_max(maximum);
  double sum = 0;
  for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) {
    const float e = expf(scale * row[j] - maximum);
    row[j] = e;
    sum += e;
  }
  const float inverse = float(1.0 / block_sum(sum));
  for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) row[j] *= inverse;
}

}  // namespace k5::cuda
