#include "models/crossdit/nabla.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "ops/pool.h"

namespace k5 {

std::vector<int64_t> fractal_order(int64_t T, int64_t H, int64_t W) {
  K5_CHECK(H % 8 == 0 && W % 8 == 0, "NABLA: the patched grid ", H, " x ", W,
           " must have both sides divisible by 8 (latent height and width divisible by 16)");
  std::vector<int64_t> order;
  order.reserve(size_t(T * H * W));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t hb = 0; hb < H / 8; ++hb)
      for (int64_t wb = 0; wb < W / 8; ++wb)
        for (int64_t h = 0; h < 8; ++h)
          for (int64_t w = 0; w < 8; ++w) order.push_back((t * H + hb * 8 + h) * W + wb * 8 + w);
  return order;
}

Tensor sta_block_mask(int64_t T, int64_t Hb, int64_t Wb, int64_t wT, int64_t wH, int64_t wW) {
  const int64_t n = T * Hb * Wb;
  Tensor mask = Tensor::zeros(DType::U8, {n, n});
  uint8_t* m = mask.data<uint8_t>();
  for (int64_t q = 0; q < n; ++q) {
    const int64_t tq = q / (Hb * Wb), hq = q / Wb % Hb, wq = q % Wb;
    for (int64_t k = 0; k < n; ++k) {
      const int64_t tk = k / (Hb * Wb), hk = k / Wb % Hb, wk = k % Wb;
      m[q * n + k] = std::abs(tq - tk) <= wT / 2 && std::abs(hq - hk) <= wH / 2 && std::abs(wq - wk) <= wW / 2;
    }
  }
  return mask;
}

double nabla_block_mask(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& sta, double P, Tensor& mask) {
  const int64_t S = q.size(0), heads = q.size(1), D = q.size(2), n = S / kNablaBlock;
  K5_CHECK(S % kNablaBlock == 0, "NABLA: ", S, " tokens is not a multiple of 64");
  K5_CHECK(sta.size(0) == n, "NABLA: STA mask has ", sta.size(0), " blocks, expected ", n);
  mask = Tensor::zeros(DType::U8, {heads, n, n});
  // Block means [heads, n, D] for q and k, pooled where q and k live and read here (small: S / 64 rows).
  auto pool = [&](const Tensor& x) {
    auto scope = ctx.workspace(x.device()).scope();
    Tensor pooled = ctx.workspace(x.device()).tensor(DType::F32, {heads, n, D});
    ops::block_mean_pool(ctx, x, kNablaBlock, pooled);
    return pooled.to_f32_vector();
  };
  const std::vector<float> q_pool = pool(q), k_pool = pool(k);
  const float threshold = float(1.0 - P);
  const float inv_sqrt_d = 1.0f / std::sqrt(float(D));
  const uint8_t* sta_mask = sta.data<uint8_t>();
  uint8_t* out = mask.data<uint8_t>();
  ctx.pool().parallel_for(0, heads * n, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(n));
    std::vector<int64_t> index(static_cast<size_t>(n));
    for (int64_t hq = begin; hq < end; ++hq) {
      const int64_t h = hq / n, qb = hq % n;
      const float* qv = q_pool.data() + (h * n + qb) * D;
      float max_score = -INFINITY;
      for (int64_t kb = 0; kb < n; ++kb) {
        const float* kv = k_pool.data() + (h * n + kb) * D;
        float dot = 0;
        for (int64_t c = 0; c < D; ++c) dot += qv[c] * kv[c];
        row[kb] = dot * inv_sqrt_d;
        max_score = std::max(max_score, row[kb]);
      }
      float sum = 0;
      for (int64_t kb = 0; kb < n; ++kb) sum += row[kb] = std::exp(row[kb] - max_score);
      for (int64_t kb = 0; kb < n; ++kb) row[kb] /= sum;
      // Top-CDF: ascending order, keep the blocks whose running mass reaches 1 - P.
      std::iota(index.begin(), index.end(), 0);
      std::stable_sort(index.begin(), index.end(), [&](int64_t a, int64_t b) { return row[a] < row[b]; });
      uint8_t* m = out + (h * n + qb) * n;
      float cumulative = 0;
      for (int64_t i = 0; i < n; ++i) {
        cumulative += row[index[i]];
        m[index[i]] = cumulative >= threshold;
      }
      for (int64_t kb = 0; kb < n; ++kb) m[kb] |= sta_mask[qb * n + kb];
    }
  });
  int64_t kept = 0;
  for (int64_t i = 0; i < heads * n * n; ++i) kept += out[i];
  if (q.device() != Device::CPU) mask = mask.to_device(q.device());
  return double(kept) / double(heads * n * n);
}

}  // namespace k5
