// Int8 weight-only GEMM with AVX-512 BF16 dot products: int8 weights are exact in BF16 (|q| <= 127), so a
// dequantised block holds q itself and the per-channel scale is applied to the float32 dot product. The
// activations are rounded to BF16 once per call (the bf16 precision mode's matmul inputs).
//
// GCC 12's AVX-512 headers give the unmasked intrinsics an undefined pass-through operand that its
// uninitialised-value warnings flag inside the headers (the older kernels here use zero-masked forms instead).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <limits>
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

// Decoding (one to four activation rows) is bound by reading the weights: each int8 row is read once for
// all the activation rows. Converting every weight to float costs more than reading it (4 instructions per
// 32 weights held the kernel to 37% of the memory bandwidth), so the products are integer instead: the
// weights are sign-extended to int16 (one instruction per 32) and multiplied with int16 activations by
// VPDPWSSD (AVX512-VNNI), which sums pairs of products into int32 lanes.
//
// The activations are first rounded to BF16 (as the GEMM path and the bf16 precision mode do), then written
// as int16 in blocks of kActivationBlock with a power-of-two scale per block chosen so that the block's
// largest magnitude lands in [2^14, 2^15). A BF16 value has 8 significant bits, so every element within 2^7 of
// its block's maximum is exact in int16; only smaller ones are rounded, by at most 2^-16 of the block maximum.
// A block's int32 sum holds at most 64 products of |x| < 2^15 and |q| <= 127: no overflow.
constexpr int64_t kGemvMaxRows = 4;
constexpr int64_t kActivationBlock = 64;
// x rows as int16 [M, blocks * 64] (zero-padded) and one float scale per block: x[m, k] ~= values * scale.
struct BlockQuantisedRows {
  std::vector<int16_t> values;
  std::vector<float> scales;
  int64_t blocks = 0;
};

BlockQuantisedRows quantise_activation_rows(const float* x, int64_t x_row_stride, int64_t M, int64_t K) {
  BlockQuantisedRows rows;
  rows.blocks = (K + kActivationBlock - 1) / kActivationBlock;
  const int64_t Kp = rows.blocks * kActivationBlock;
  rows.values.assign(size_t(M * Kp), 0);
  rows.scales.assign(size_t(M * rows.blocks), 0.0f);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t b = 0; b < rows.blocks; ++b) {
      const int64_t k0 = b * kActivationBlock, count = std::min(kActivationBlock, K - k0);
      __m512 v[4];
      __m512 max_abs = _mm512_setzero_ps();
      __mmask16 not_a_number = 0;
      for (int part = 0; part < 4; ++part) {
        const int64_t left = std::clamp<int64_t>(count - part * 16, 0, 16);
        const __mmask16 mask = __mmask16((1u << left) - 1u);
        const __m512 loaded = _mm512_maskz_loadu_ps(mask, x + m * x_row_stride + k0 + part * 16);
        // Round to nearest even BF16 and back (the low half of each lane cleared).
        const __m256i rounded = (__m256i)_mm512_cvtneps_pbh(loaded);
        v[part] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(rounded), 16));
        max_abs = _mm512_max_ps(max_abs, _mm512_abs_ps(v[part]));
        not_a_number |= _mm512_cmp_ps_mask(v[part], v[part], _CMP_UNORD_Q);
      }
      const float largest = _mm512_reduce_max_ps(max_abs);
      uint32_t bits;
      std::memcpy(&bits, &largest, 4);
      const int exponent = int(bits >> 23);  // biased: largest in [2^(exponent-127), 2^(exponent-126))
      if (exponent <= 14) continue;          // zero (or < 2^-112) block: stays zero
      // scale = 2^(exponent-141), so largest / scale in [2^14, 2^15); inverse = 1 / scale, both exact.
      const uint32_t scale_bits = uint32_t(std::min(exponent, 254) - 14) << 23;
      const uint32_t inverse_bits = uint32_t(std::max(268 - exponent, 1)) << 23;
      float scale, inverse;
      std::memcpy(&scale, &scale_bits, 4);
      std::memcpy(&inverse, &inverse_bits, 4);
      // A NaN or infinite activation makes the block's products NaN, as the float product would (not a
      // saturated int16).
      rows.scales[size_t(m * rows.blocks + b)] =
          not_a_number || exponent == 255 ? std::numeric_limits<float>::quiet_NaN() : scale;
      int16_t* destination = rows.values.data() + m * Kp + k0;
      for (int part = 0; part < 4; ++part) {
        const __m512i integers = _mm512_cvtps_epi32(_mm512_mul_ps(v[part], _mm512_set1_ps(inverse)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(destination + part * 16), _mm512_cvtsepi32_epi16(integers));
      }
    }
  return rows;
}

// 32 int8 weights sign-extended to int16; `left` < 32 reads only that many (the row's tail).
inline __m512i load_weights_int16(const int8_t* w, int64_t left) {
  if (left >= 32) return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w)));
  const __mmask32 mask = left <= 0 ? 0 : __mmask32((1ull << left) - 1);
  return _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(mask, w));
}

// out[m, n0 + j] for m < M, j < R: R weight rows read side by side, each once for the M activation rows;
// float32 accumulators of the block sums, one horizontal sum per output at the end.
template <int M, int R>
void gemv_int8_rows(const BlockQuantisedRows& x, const int8_t* values, const float* scales, const float* bias,
                    float* out, int64_t out_row_stride, int64_t n0, int64_t K) {
  const int64_t Kp = x.blocks * kActivationBlock;
  const int8_t* w[R];
  for (int j = 0; j < R; ++j) w[j] = values + (n0 + j) * K;
  __m512 acc[M][R];
  for (auto& row : acc)
    for (auto& a : row) a = _mm512_setzero_ps();
  for (int64_t b = 0; b < x.blocks; ++b) {
    const int64_t k = b * kActivationBlock;
    __m512i xv[M][2];
    __m512 xs[M];
    for (int i = 0; i < M; ++i) {
      xv[i][0] = _mm512_loadu_si512(x.values.data() + i * Kp + k);
      xv[i][1] = _mm512_loadu_si512(x.values.data() + i * Kp + k + 32);
      xs[i] = _mm512_set1_ps(x.scales[size_t(i * x.blocks + b)]);
    }
    for (int j = 0; j < R; ++j) {
      const __m512i w0 = load_weights_int16(w[j] + k, K - k), w1 = load_weights_int16(w[j] + k + 32, K - k - 32);
      for (int i = 0; i < M; ++i) {
        const __m512i sum = _mm512_dpwssd_epi32(_mm512_madd_epi16(xv[i][0], w0), xv[i][1], w1);
        acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), xs[i], acc[i][j]);
      }
    }
  }
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < R; ++j) {
      const int64_t n = n0 + j;
      out[i * out_row_stride + n] = _mm512_reduce_add_ps(acc[i][j]) * scales[n] + (bias ? bias[n] : 0.0f);
    }
}

// Output features handled together per activation-row count when the activations outgrow L1 (the 7B's
// down projection, K = 18944: 37 KB of int16 per row): each activation load then serves R weight rows.
// Accumulators and inputs fit the 32 registers. Shorter rows go one at a time: a single sequential stream
// per thread is what the hardware prefetcher follows best (as in gemv_bf16, linear.cpp).
template <int M>
constexpr int kGemvGroup = M == 1 ? 4 : M == 2 ? 4 : 2;
constexpr int64_t kGemvActivationBytesInL1 = 16 << 10;

template <int M>
void gemv_int8_vnni(ThreadPool& pool, const float* x, int64_t x_row_stride, const int8_t* values, const float* scales,
                    const float* bias, float* out, int64_t out_row_stride, int64_t N, int64_t K) {
  const BlockQuantisedRows rows = quantise_activation_rows(x, x_row_stride, M, K);
  const bool grouped = M * rows.blocks * kActivationBlock * 2 > kGemvActivationBytesInL1;
  constexpr int R = kGemvGroup<M>;
  const int64_t group = grouped ? R : 1, groups = (N + group - 1) / group;
  pool.parallel_for(0, groups, 16, [&](int64_t first, int64_t last) {
    int64_t n = first * group;
    const int64_t end = std::min(N, last * group);
    if (grouped)
      for (; n + R <= end; n += R) gemv_int8_rows<M, R>(rows, values, scales, bias, out, out_row_stride, n, K);
    for (; n < end; ++n) gemv_int8_rows<M, 1>(rows, values, scales, bias, out, out_row_stride, n, K);
  });
}

// Without VNNI: each weight converted to float and multiplied with the BF16-rounded activations.
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

void gemv_int8_float(ThreadPool& pool, const float* x, int64_t x_row_stride, const int8_t* values,
                     const float* scales, const float* bias, float* out, int64_t out_row_stride, int64_t M, int64_t N,
                     int64_t K) {
  std::vector<float> xr(static_cast<size_t>(M * K));  // the activations rounded to BF16, as the GEMM path
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) xr[size_t(m * K + k)] = bf16_to_f32(f32_to_bf16(x[m * x_row_stride + k]));
  pool.parallel_for(0, N, 64, [&](int64_t first, int64_t last) {
    for (int64_t n = first; n < last; ++n)
      for (int64_t m = 0; m < M; ++m)
        out[m * out_row_stride + n] = dot_int8(values + n * K, xr.data() + m * K, K) * scales[n] + (bias ? bias[n] : 0.0f);
  });
}

void gemv_int8(ThreadPool& pool, const float* x, int64_t x_row_stride, const int8_t* values, const float* scales,
               const float* bias, float* out, int64_t out_row_stride, int64_t M, int64_t N, int64_t K) {
  static const bool vnni = __builtin_cpu_supports("avx512vnni");
  if (!vnni) return gemv_int8_float(pool, x, x_row_stride, values, scales, bias, out, out_row_stride, M, N, K);
  switch (M) {
    case 1: return gemv_int8_vnni<1>(pool, x, x_row_stride, values, scales, bias, out, out_row_stride, N, K);
    case 2: return gemv_int8_vnni<2>(pool, x, x_row_stride, values, scales, bias, out, out_row_stride, N, K);
    case 3: return gemv_int8_vnni<3>(pool, x, x_row_stride, values, scales, bias, out, out_row_stride, N, K);
    default: return gemv_int8_vnni<4>(pool, x, x_row_stride, values, scales, bias, out, out_row_stride, N, K);
  }
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
