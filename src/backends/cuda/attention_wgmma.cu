// The Hopper attention kernel's host side (attention_wgmma.cuh has the kernel and its description): the BF16
// copies it reads (v transposed), the probe that tells whether this binary has its sm_90a code, and the launch.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include "backends/cuda/attention_tiles.cuh"
#include "backends/cuda/attention_wgmma.cuh"
#include "backends/cuda/check.h"
#include "backends/cuda/device_buffer.h"

namespace k5::cuda {

namespace {

__global__ void wgmma_compiled_kernel(int* answer) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  *answer = 1;
#else
  *answer = 0;
#endif
}

// Whether this binary holds the wgmma code for the current device (an sm_90 GPU and a build for sm_90a). A probe
// with no image for this device says no; any other error is reported (and the probe runs again at the next call,
// rather than settling on the slower kernels for the rest of the process).
bool wgmma_compiled_for_device() {
  static const bool compiled = [] {
    if (compute_capability() / 10 != 9) return false;
    const ScratchBuffer answer(sizeof(int));
    wgmma_compiled_kernel<<<1, 1>>>(answer.as<int>());
    const cudaError_t launched = cudaGetLastError();
    if (launched == cudaErrorNoKernelImageForDevice || launched == cudaErrorInvalidDeviceFunction) return false;
    K5_CUDA_CHECK(launched);
    int value = 0;
    copy_device_to_host(&value, answer.as<int>(), sizeof(int));
    return value == 1;
  }();
  return compiled;
}

template <int kDim, int kWarpgroups, bool kOverlap>
void launch(const AttentionParams& p) {
  const int kv_heads = p.heads / p.group;
  const int64_t padded_keys = (p.k_tokens + kKeyTile - 1) / kKeyTile * kKeyTile;
  const ScratchBuffer q(size_t(p.q_tokens) * p.heads * kDim * 2), k(size_t(p.k_tokens) * kv_heads * kDim * 2),
      v(size_t(padded_keys) * kv_heads * kDim * 2);
  to_bf16_heads(p.q, p.q_tokens, p.heads, kDim, q.as<__nv_bfloat16>());
  to_bf16_heads(p.k, p.k_tokens, kv_heads, kDim, k.as<__nv_bfloat16>());
  if (padded_keys > 0) {
    const dim3 grid(unsigned(padded_keys / 32), unsigned(kDim / 32), unsigned(kv_heads)), block(32, 8);
    to_bf16_transposed_kernel<<<grid, block>>>(p.v, p.k_tokens, padded_keys, kDim, v.as<__nv_bfloat16>());
    K5_CUDA_CHECK_LAUNCH("to_bf16_transposed_kernel");
  }
  const auto kernel = flash_attention_bf16_wgmma<kDim, kWarpgroups, kOverlap>;
  const size_t bytes = wgmma_shared_bytes(kDim, kWarpgroups, kOverlap ? 3 : 2);
  K5_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  const int64_t rows_per_block = kWarpgroupRows * kWarpgroups;
  const dim3 grid(unsigned((p.q_tokens + rows_per_block - 1) / rows_per_block), unsigned(p.heads));
  kernel<<<grid, 128 * kWarpgroups, bytes>>>(
      p, WgmmaOperands{q.as<__nv_bfloat16>(), k.as<__nv_bfloat16>(), v.as<__nv_bfloat16>(), kv_heads, padded_keys});
  K5_CUDA_CHECK_LAUNCH("flash_attention_bf16_wgmma");
}

}  // namespace

bool wgmma_attention_available(int dim) {
  return (dim == 64 || dim == 128) && wgmma_compiled_for_device() &&
         wgmma_shared_bytes(dim, wgmma_warpgroups(dim, false, true), 3) <= shared_memory_per_block();
}

void launch_flash_attention_bf16_wgmma(const AttentionParams& p, bool overlap) {
  const int warpgroups = wgmma_warpgroups(p.dim, p.block_mask != nullptr, overlap);
  if (p.dim == 64) {
    if (!overlap) return warpgroups == 1 ? launch<64, 1, false>(p) : launch<64, 2, false>(p);
    return warpgroups == 1 ? launch<64, 1, true>(p) : launch<64, 3, true>(p);
  }
  if (!overlap) return warpgroups == 1 ? launch<128, 1, false>(p) : launch<128, 2, false>(p);
  return warpgroups == 1 ? launch<128, 1, true>(p) : launch<128, 2, true>(p);
}

}  // namespace k5::cuda
