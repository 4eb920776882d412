// NABLA's block means (the kernel of pool.cu), in a header so that the CPU test suite runs this same device code under
// the warp emulator (tests/backends/cuda_emulated/): one thread per output value, summing its block's tokens in order
// in float32 as the CPU does, so both give the same bits.
#pragma once

#include <cstdint>

namespace k5::cuda {

constexpr int kBlockMeanPoolThreads = 256;

__global__ void block_mean_pool_kernel(const float* x, int64_t token_stride, int64_t head_stride, int64_t heads,
                                       int64_t blocks, int64_t block, int64_t dim, float* out) {
  const int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= heads * blocks * dim) return;
  const int64_t c = index % dim, b = index / dim % blocks, h = index / (dim * blocks);
  const float* column = x + b * block * token_stride + h * head_stride + c;
  float sum = 0.0f;
  for (int64_t i = 0; i < block; ++i) sum += column[i * token_stride];
  out[index] = sum / float(block);
}

}  // namespace k5::cuda
