// Int8 weight-only GEMM with AVX-512 BF16 dot products: int8 weights are exact in BF16 (|q| <= 127), so a
// dequantised block holds q itself and the per-channel scale is applied to the float32 dot product. The
// activations are rounded to BF16 once per call (the bf16 precision mode's matmul inputs).
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "backends/cpu/linear_int8.h"
#include "core/dtype.h"

namespace k5::cpu {
namespace {

constexpr int64_t kBlockRows = 16;

// 4 activation rows x 4 weight rows, K padded to a multiple of 32 with zeros.
void micro_kernel(const uint16_t* x, int64_t mr, const uint16_t* w, int64_t nr, int64_t Kp, float result[4][4]) {
  __m512 acc[4][4];
  for (auto& row : acc)
    for (auto& a : row) a = _mm512_setzero_ps();
  const uint16_t* xr[4];
  const uint16_t* wr[4];
  for (int i = 0; i < 4; ++i) xr[i] = x + std::min<int64_t>(i, mr - 1) * Kp;
  for (int j = 0; j < 4; ++j) wr[j] = w + std::min<int64_t>(j, nr - 1) * Kp;
  for (int64_t k = 0; k < Kp; k += 32) {
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(wr[0] + k), w1 = (__m512bh)_mm512_loadu_si512(wr[1] + k);
    const __m512bh w2 = (__m512bh)_mm512_loadu_si512(wr[2] + k), w3 = (__m512bh)_mm512_loadu_si512(wr[3] + k);
    for (int i = 0; i < 4; ++i) {
      const __m512bh xv = (__m512bh)_mm512_loadu_si512(xr[i] + k);
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], xv, w0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], xv, w1);
      acc[i][2] = _mm512_dpbf16_ps(acc[i][2], xv, w2);
      acc[i][3] = _mm512_dpbf16_ps(acc[i][3], xv, w3);
    }
  }
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      alignas(64) float lanes[16];
      _mm512_store_ps(lanes, acc[i][j]);
      float sum = 0.0f;
      for (float lane : lanes) sum += lane;
      result[i][j] = sum;
    }
}

void int8_rows_to_bf16(const int8_t* values, int64_t rows, int64_t K, int64_t Kp, uint16_t* destination) {
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* source = values + r * K;
    uint16_t* row = destination + r * Kp;
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(source + k));
      // Zero-masked forms: GCC 12 flags the unmasked intrinsics' undefined pass-through as uninitialised.
      const __m512 v = _mm512_maskz_cvtepi32_ps(0xffff, _mm512_maskz_cvtepi8_epi32(0xffff, bytes));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + k), (__m256i)_mm512_cvtneps_pbh(v));
    }
    for (; k < K; ++k) row[k] = f32_to_bf16(float(source[k]));
    for (; k < Kp; ++k) row[k] = 0;
  }
}

// Decoding (one to four activation rows) is bound by reading the weights: each int8 row is read once and
// multiplied in float32 with every activation row, without the dequantised block.
constexpr int64_t kGemvMaxRows = 4;

float dot_int8(const int8_t* w, const float* x, int64_t K) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + k));
    const __m512 lo = _mm512_maskz_cvtepi32_ps(0xffff, _mm512_maskz_cvtepi8_epi32(0xffff, _mm256_castsi256_si128(bytes)));
    const __m512 hi =
        _mm512_maskz_cvtepi32_ps(0xffff, _mm512_maskz_cvtepi8_epi32(0xffff, _mm256_extracti128_si256(bytes, 1)));
    acc0 = _mm512_fmadd_ps(lo, _mm512_loadu_ps(x + k), acc0);
    acc1 = _mm512_fmadd_ps(hi, _mm512_loadu_ps(x + k + 16), acc1);
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, _mm512_add_ps(acc0, acc1));
  float sum = 0.0f;
  for (const float lane : lanes) sum += lane;
  for (; k < K; ++k) sum += float(w[k]) * x[k];
  return sum;
}

void gemv_int8(ThreadPool& pool, const float* x, int64_t x_row_stride, const int8_t* values, const float* scales,
               const float* bias, float* out, int64_t out_row_stride, int64_t M, int64_t N, int64_t K) {
  std::vector<float> xr(static_cast<size_t>(M * K));  // the activations rounded to BF16, as the GEMM path
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) xr[size_t(m * K + k)] = bf16_to_f32(f32_to_bf16(x[m * x_row_stride + k]));
  pool.parallel_for(0, N, 64, [&](int64_t first, int64_t last) {
    for (int64_t n = first; n < last; ++n)
      for (int64_t m = 0; m < M; ++m)
        out[m * out_row_stride + n] = dot_int8(values + n * K, xr.data() + m * K, K) * scales[n] + (bias ? bias[n] : 0.0f);
  });
}

}  // namespace

void int8_to_bf16_avx512(const int8_t* values, int64_t count, uint16_t* destination) {
  int8_rows_to_bf16(values, 1, count, count, destination);
}

void linear_int8_bf16_avx512(ThreadPool& pool, const float* x, int64_t x_row_stride, const int8_t* values,
                             const float* scales, const float* bias, float* out, int64_t out_row_stride, int64_t M,
                             int64_t N, int64_t K) {
  if (M <= kGemvMaxRows) return gemv_int8(pool, x, x_row_stride, values, scales, bias, out, out_row_stride, M, N, K);
  const int64_t Kp = (K + 31) / 32 * 32;
  std::vector<uint16_t> xb(static_cast<size_t>(M * Kp), 0);
  pool.parallel_for(0, M, 1, [&](int64_t first, int64_t last) {
    for (int64_t m = first; m < last; ++m)
      for (int64_t k = 0; k < K; ++k) xb[size_t(m * Kp + k)] = f32_to_bf16(x[m * x_row_stride + k]);
  });
  const int64_t blocks = (N + kBlockRows - 1) / kBlockRows;
  pool.parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    std::vector<uint16_t> weights(static_cast<size_t>(kBlockRows * Kp));
    for (int64_t block = first; block < last; ++block) {
      const int64_t n0 = block * kBlockRows, rows = std::min(kBlockRows, N - n0);
      int8_rows_to_bf16(values + n0 * K, rows, K, Kp, weights.data());
      for (int64_t m0 = 0; m0 < M; m0 += 4) {
        const int64_t mr = std::min<int64_t>(4, M - m0);
        for (int64_t j0 = 0; j0 < rows; j0 += 4) {
          const int64_t nr = std::min<int64_t>(4, rows - j0);
          float result[4][4];
          micro_kernel(xb.data() + m0 * Kp, mr, weights.data() + j0 * Kp, nr, Kp, result);
          for (int64_t i = 0; i < mr; ++i)
            for (int64_t j = 0; j < nr; ++j) {
              const int64_t n = n0 + j0 + j;
              out[(m0 + i) * out_row_stride + n] = result[i][j] * scales[n] + (bias ? bias[n] : 0.0f);
            }
        }
      }
    }
  });
}

}  // namespace k5::cpu
