// NABLA's block selection on the GPU (the CUDA side of ops::nabla_select_blocks); the kernel is in nabla.cuh.
#include <cuda_runtime_api.h>

#include <cmath>

#include "backends/cuda/check.h"
#include "backends/cuda/device.h"
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/nabla.cuh"
#include "ops/operands.h"

namespace k5::cuda {

namespace {

// A row's sort runs in one block's shared memory: 2^14 slots (128 KiB) is n = 16,384 blocks of 64 tokens, about
// four times a Video Pro HD 10 s clip.
constexpr int64_t kMaxSortedBlocks = int64_t(1) << 14;

}  // namespace

int64_t nabla_select_blocks(Context&, const Tensor& q_pool, const Tensor& k_pool, const Tensor& sta, double P,
                            Tensor& block_mask) {
  const auto [heads, n, dim] = ops::nabla_selection_shape(q_pool, k_pool, sta, block_mask);
  K5_CHECK(q_pool.device() == Device::CUDA && k_pool.device() == Device::CUDA && sta.device() == Device::CUDA &&
               block_mask.device() == Device::CUDA,
           "nabla_select_blocks: every operand must be on the GPU");
  K5_CHECK(n <= kMaxSortedBlocks, "nabla_select_blocks: ", n, " blocks per row is more than the GPU selection sorts (",
           kMaxSortedBlocks, ")");
  K5_CHECK(heads * n < (int64_t(1) << 31), "nabla_select_blocks: ", heads, " x ", n,
           " rows is more than one launch takes");
  if (heads * n == 0) return 0;
  int padded = 1;
  while (padded < n) padded *= 2;
  const size_t shared = nabla_select_shared_bytes(padded);
  K5_CHECK(shared <= shared_memory_per_block(), "nabla_select_blocks: ", n, " blocks per row need ", shared,
           " bytes of shared memory to sort, this GPU gives a block ", shared_memory_per_block());
  ScratchBuffer kept(sizeof(unsigned long long));
  K5_CUDA_CHECK(cudaMemsetAsync(kept.as<void>(), 0, sizeof(unsigned long long)));
  K5_CUDA_CHECK(cudaFuncSetAttribute(nabla_select_kernel<kNablaSelectThreads>,
                                     cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared)));
  const NablaSelection selection{.q_pool = q_pool.data<float>(),
                                 .k_pool = k_pool.data<float>(),
                                 .sta = sta.data<uint8_t>(),
                                 .block_mask = block_mask.data<uint8_t>(),
                                 .kept = kept.as<unsigned long long>(),
                                 .blocks = n,
                                 .dim = int(dim),
                                 .padded = padded,
                                 .inverse_sqrt_d = 1.0f / std::sqrt(float(dim)),
                                 .threshold = float(1.0 - P)};
  nabla_select_kernel<kNablaSelectThreads><<<unsigned(heads * n), kNablaSelectThreads, shared>>>(selection);
  K5_CUDA_CHECK_LAUNCH("nabla_select_kernel");
  unsigned long long count = 0;
  copy_device_to_host(&count, kept.as<void>(), sizeof(count));
  return int64_t(count);
}

}  // namespace k5::cuda
