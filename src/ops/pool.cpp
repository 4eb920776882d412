#include "ops/pool.h"

#include "backends/cpu/kernels.h"
#include "backends/cuda/kernels.h"
#include "ops/dispatch.h"

namespace k5::ops {

void block_mean_pool(Context& ctx, const Tensor& x, int64_t block, Tensor& out) {
  K5_CHECK(x.dim() == 3 && x.stride(2) == 1 && x.dtype() == DType::F32 && block > 0 && x.size(0) % block == 0,
           "block_mean_pool: input ", x.describe(), " with blocks of ", block, " tokens");
  K5_CHECK(out.dtype() == DType::F32 && out.is_contiguous() &&
               (out.shape() == Shape{x.size(1), x.size(0) / block, x.size(2)}),
           "block_mean_pool: output ", out.describe(), " for input ", x.describe());
  if constexpr (kCudaBuild)
    if (on_cuda("block_mean_pool", x, out)) return cuda::block_mean_pool(ctx, x, block, out);
  device_of("block_mean_pool", x, out);
  cpu::block_mean_pool(ctx, x, block, out);
}

}  // namespace k5::ops
