#include "ops/attention.h"

#include "backends/cpu/kernels.h"
#include "ops/dispatch.h"

namespace k5::ops {

void attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
               const AttentionOptions& options) {
  device_of("attention", q, k, v, out);
  cpu::attention(ctx, q, k, v, out, options);
}

void block_sparse_attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& block_mask,
                            int block_size, Tensor& out, float scale) {
  device_of("block_sparse_attention", q, k, v, out);
  cpu::block_sparse_attention(ctx, q, k, v, block_mask, block_size, out, scale);
}

}  // namespace k5::ops
