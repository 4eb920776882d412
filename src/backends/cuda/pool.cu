// block_mean_pool on the GPU (src/ops/pool.h): the launch; the kernel is in pool.cuh.
#include "backends/cuda/check.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/pool.cuh"

namespace k5::cuda {

void block_mean_pool(Context&, const Tensor& x, int64_t block, Tensor& out) {
  const int64_t heads = x.size(1), dim = x.size(2), blocks = x.size(0) / block, total = heads * blocks * dim;
  if (total == 0) return;
  block_mean_pool_kernel<<<unsigned((total + kBlockMeanPoolThreads - 1) / kBlockMeanPoolThreads),
                           kBlockMeanPoolThreads>>>(x.data<float>(), x.stride(0), x.stride(1), heads, blocks, block,
                                                    dim, out.data<float>());
  K5_CUDA_CHECK_LAUNCH("block_mean_pool");
}

}  // namespace k5::cuda
