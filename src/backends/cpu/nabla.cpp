// NABLA's block selection on the CPU (src/ops/attention.h): one query block's row at a time, in the float32
// arithmetic the CUDA kernel repeats (src/backends/cuda/nabla.cuh).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <vector>

#include "backends/cpu/kernels.h"
#include "ops/operands.h"

namespace k5::cpu {

int64_t nabla_select_blocks(Context& ctx, const Tensor& q_pool, const Tensor& k_pool, const Tensor& sta, double P,
                            Tensor& block_mask) {
  const auto [heads, n, D] = ops::nabla_selection_shape(q_pool, k_pool, sta, block_mask);
  const float threshold = float(1.0 - P);
  const float inverse_sqrt_d = 1.0f / std::sqrt(float(D));
  const float* queries = q_pool.data<float>();
  const float* keys = k_pool.data<float>();
  const uint8_t* sta_mask = sta.data<uint8_t>();
  uint8_t* out = block_mask.data<uint8_t>();
  std::atomic<int64_t> kept{0};
  ctx.pool().parallel_for(0, heads * n, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(n));
    std::vector<int64_t> index(static_cast<size_t>(n));
    int64_t kept_here = 0;
    for (int64_t hq = begin; hq < end; ++hq) {
      const int64_t h = hq / n, qb = hq % n;
      const float* qv = queries + hq * D;
      float max_score = -INFINITY;
      for (int64_t kb = 0; kb < n; ++kb) {
        const float* kv = keys + (h * n + kb) * D;
        float dot = 0;
        for (int64_t c = 0; c < D; ++c) dot = std::fma(qv[c], kv[c], dot);
        row[size_t(kb)] = dot * inverse_sqrt_d;
        max_score = std::max(max_score, row[size_t(kb)]);
      }
      float sum = 0;
      for (float& p : row) sum += p = float(std::exp(double(p - max_score)));
      for (float& p : row) p /= sum;
      // Top-CDF: ascending order, keep the blocks whose running mass reaches 1 - P.
      std::iota(index.begin(), index.end(), 0);
      std::stable_sort(index.begin(), index.end(),
                       [&](int64_t a, int64_t b) { return row[size_t(a)] < row[size_t(b)]; });
      uint8_t* m = out + hq * n;
      float cumulative = 0;
      for (int64_t i : index) {
        cumulative += row[size_t(i)];
        m[i] = cumulative >= threshold;
      }
      for (int64_t kb = 0; kb < n; ++kb) kept_here += m[kb] = m[kb] || sta_mask[qb * n + kb] != 0;
    }
    kept += kept_here;
  });
  return kept.load();
}

}  // namespace k5::cpu
