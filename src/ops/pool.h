// Pooling over groups of tokens.
#pragma once

#include "core/context.h"
#include "core/tensor.h"

namespace k5::ops {

// out[h, b, :] = mean of x[b * block + i, h, :] for i in [0, block): x [L, H, D] F32 (last dim contiguous,
// other strides free), L a multiple of `block`; out [H, L / block, D] F32 contiguous, on x's device.
// Sums in float32 in token order, then one division (NABLA's block means, as the official avg_pool).
void block_mean_pool(Context& ctx, const Tensor& x, int64_t block, Tensor& out);

}  // namespace k5::ops
