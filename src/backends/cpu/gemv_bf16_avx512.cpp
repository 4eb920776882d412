// The AVX512-BF16 kernel behind gemv_bf16 (src/backends/cpu/linear.cpp); built with the AVX-512 flags and
// called only where cpu_features() reports VDPBF16PS.
#include <immintrin.h>

#include <algorithm>

#include "backends/cpu/gemv_bf16_avx512.h"

namespace k5::cpu {
namespace {

// AVX512-BF16 path: VDPBF16PS multiplies 32 BF16 pairs and adds them into 16 float32 lanes, one instruction
// per 64 bytes of weights, so the loop is bound by memory alone. R weight rows are read side by side, each
// once for the M activation rows (R * M independent accumulators hide the instruction's latency); the lanes
// are summed once per output. Products of BF16 values are exact in float32; the instruction adds with
// round-to-nearest-even and treats denormal inputs as zero (BF16 activations below 1e-38).
inline float sum_lanes(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float sum = 0.0f;
  for (const float lane : lanes) sum += lane;
  return sum;
}

template <int M, int R>
void gemv_bf16_rows(const uint16_t* x, int64_t k, const uint16_t* w, int64_t j0, const float* bias,
                                   const Rows& out) {
  __m512 acc[M][R];
  for (auto& row : acc)
    for (auto& a : row) a = _mm512_setzero_ps();
  const uint16_t* rows[R];
  for (int j = 0; j < R; ++j) rows[j] = w + (j0 + j) * k;
  int64_t i = 0;
  for (; i + 32 <= k; i += 32) {
    __m512bh xv[M];
    for (int r = 0; r < M; ++r) xv[r] = (__m512bh)_mm512_loadu_si512(x + r * k + i);
    for (int j = 0; j < R; ++j) {
      const __m512bh wv = (__m512bh)_mm512_loadu_si512(rows[j] + i);
      for (int r = 0; r < M; ++r) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], xv[r], wv);
    }
  }
  if (i < k) {  // the row tails: zeros past the end
    const __mmask32 mask = __mmask32((1ull << (k - i)) - 1);
    __m512bh xv[M];
    for (int r = 0; r < M; ++r) xv[r] = (__m512bh)_mm512_maskz_loadu_epi16(mask, x + r * k + i);
    for (int j = 0; j < R; ++j) {
      const __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(mask, rows[j] + i);
      for (int r = 0; r < M; ++r) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], xv[r], wv);
    }
  }
  for (int r = 0; r < M; ++r)
    for (int j = 0; j < R; ++j) out.row(r)[j0 + j] = sum_lanes(acc[r][j]) + (bias ? bias[j0 + j] : 0.0f);
}

// Output features handled together per activation-row count when the activations outgrow L1 (the 7B's
// down projection, K = 18944: 37 KB per row): each activation load then serves R weight rows. Accumulators
// and inputs fit the 32 registers. Shorter rows go one at a time: a single sequential stream per thread is
// what the hardware prefetcher follows best (2 threads, K = 3584: 53 GB/s one row at a time, 37 GB/s four
// rows side by side, 42 GB/s with software prefetch of the next four; K = 18944: 57 GB/s four side by
// side, 40 one at a time).
template <int M>
constexpr int kGemvGroup = M == 1 ? 4 : M == 2 ? 4 : 2;
constexpr int64_t kGemvActivationBytesInL1 = 16 << 10;

template <int M>
void gemv_bf16_group(const uint16_t* x, int64_t k, const uint16_t* w, int64_t first, int64_t last,
                                     const float* bias, const Rows& out) {
  constexpr int R = kGemvGroup<M>;
  int64_t j = first;
  if (M * k * 2 > kGemvActivationBytesInL1)
    for (; j + R <= last; j += R) gemv_bf16_rows<M, R>(x, k, w, j, bias, out);
  for (; j < last; ++j) gemv_bf16_rows<M, 1>(x, k, w, j, bias, out);
}

}  // namespace

void gemv_bf16_avx512(Context& ctx, const uint16_t* x, int64_t m, int64_t k, const uint16_t* w, int64_t n,
                      const float* bias, const Rows& out) {
  // Chunks of whole row groups (a multiple of 4 output features).
  const int64_t groups = (n + 3) / 4;
  ctx.pool().parallel_for(0, groups, 16, [&](int64_t begin, int64_t end) {
    const int64_t first = begin * 4, last = std::min(n, end * 4);
    switch (m) {
      case 1: return gemv_bf16_group<1>(x, k, w, first, last, bias, out);
      case 2: return gemv_bf16_group<2>(x, k, w, first, last, bias, out);
      case 3: return gemv_bf16_group<3>(x, k, w, first, last, bias, out);
      default: return gemv_bf16_group<4>(x, k, w, first, last, bias, out);
    }
  });
}

}  // namespace k5::cpu
