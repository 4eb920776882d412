#include "ops/attention.h"

#include "backends/cpu/kernels.h"
#include "backends/cuda/kernels.h"
#include "ops/dispatch.h"

namespace k5::ops {

void attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
               const AttentionOptions& options) {
  if constexpr (kCudaBuild)
    if (on_cuda("attention", q, k, v, out)) return cuda::attention(ctx, q, k, v, out, options);
  device_of("attention", q, k, v, out);
  if (options.key_mask) device_of("attention (key mask)", q, *options.key_mask);
  cpu::attention(ctx, q, k, v, out, options);
}

void block_sparse_attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& block_mask,
                            int block_size, Tensor& out, float scale) {
  if constexpr (kCudaBuild)
    if (on_cuda("block_sparse_attention", q, k, v, block_mask, out))
      return cuda::block_sparse_attention(ctx, q, k, v, block_mask, block_size, out, scale);
  device_of("block_sparse_attention", q, k, v, block_mask, out);
  cpu::block_sparse_attention(ctx, q, k, v, block_mask, block_size, out, scale);
}

int64_t nabla_select_blocks(Context& ctx, const Tensor& q_pool, const Tensor& k_pool, const Tensor& sta, double P,
                            Tensor& block_mask) {
  if constexpr (kCudaBuild)
    if (on_cuda("nabla_select_blocks", q_pool, k_pool, sta, block_mask))
      return cuda::nabla_select_blocks(ctx, q_pool, k_pool, sta, P, block_mask);
  device_of("nabla_select_blocks", q_pool, k_pool, sta, block_mask);
  return cpu::nabla_select_blocks(ctx, q_pool, k_pool, sta, P, block_mask);
}

}  // namespace k5::ops
