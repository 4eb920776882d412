// block_mean_pool on the GPU (src/ops/pool.h): one thread per output value, summing its block's tokens in
// order in float32 as the CPU does, so both give the same bits.
#include "backends/cuda/check.h"
#include "backends/cuda/kernels.h"

namespace k5::cuda {

namespace {

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

}  // namespace

void block_mean_pool(Context&, const Tensor& x, int64_t block, Tensor& out) {
  const int64_t heads = x.size(1), dim = x.size(2), blocks = x.size(0) / block, total = heads * blocks * dim;
  if (total == 0) return;
  constexpr int kThreads = 256;
  block_mean_pool_kernel<<<unsigned((total + kThreads - 1) / kThreads), kThreads>>>(
      x.data<float>(), x.stride(0), x.stride(1), heads, blocks, block, dim, out.data<float>());
  K5_CUDA_CHECK_LAUNCH("block_mean_pool");
}

}  // namespace k5::cuda
