#include <algorithm>

#include "backends/cpu/kernels.h"

namespace k5::cpu {

void block_mean_pool(Context& ctx, const Tensor& x, int64_t block, Tensor& out) {
  const int64_t heads = x.size(1), D = x.size(2), blocks = x.size(0) / block;
  const float* base = x.data<float>();
  const int64_t token_stride = x.stride(0), head_stride = x.stride(1);
  float* pooled = out.data<float>();
  ctx.pool().parallel_for(0, heads * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t hb = begin; hb < end; ++hb) {
      const int64_t h = hb / blocks, b = hb % blocks;
      float* o = pooled + hb * D;
      std::fill(o, o + D, 0.0f);
      for (int64_t i = 0; i < block; ++i) {
        const float* row = base + (b * block + i) * token_stride + h * head_stride;
        for (int64_t c = 0; c < D; ++c) o[c] += row[c];
      }
      for (int64_t c = 0; c < D; ++c) o[c] /= float(block);
    }
  });
}

}  // namespace k5::cpu
