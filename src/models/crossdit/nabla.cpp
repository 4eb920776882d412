#include "models/crossdit/nabla.h"

#include <cstdlib>

#include "core/error.h"
#include "core/workspace.h"
#include "ops/attention.h"
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
  Workspace& workspace = ctx.workspace(q.device());
  auto scope = workspace.scope();
  Tensor q_pool = workspace.tensor(DType::F32, {heads, n, D}), k_pool = workspace.tensor(DType::F32, {heads, n, D});
  ops::block_mean_pool(ctx, q, kNablaBlock, q_pool);
  ops::block_mean_pool(ctx, k, kNablaBlock, k_pool);
  mask = Tensor::empty(DType::U8, {heads, n, n}, q.device());
  const int64_t kept = ops::nabla_select_blocks(ctx, q_pool, k_pool, sta, P, mask);
  return double(kept) / double(heads * n * n);
}

}  // namespace k5
