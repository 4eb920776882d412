// Int8 weight-only GEMM: a block of weight rows is dequantised (scale folded in) into a float buffer, then
// multiplied with every activation row by a 4x4 register-blocked AVX2/FMA kernel. The weight is read from
// memory once per call, the dequantised block stays in L2.
#include "backends/cpu/linear_int8.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace k5::cpu {
namespace {

constexpr int64_t kBlockRows = 16;  // weight rows dequantised together

inline float horizontal_sum(__m256 v) {
  __m128 low = _mm256_castps256_ps128(v), high = _mm256_extractf128_ps(v, 1);
  __m128 sum = _mm_add_ps(low, high);
  sum = _mm_hadd_ps(sum, sum);
  sum = _mm_hadd_ps(sum, sum);
  return _mm_cvtss_f32(sum);
}

inline float horizontal_max(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline int8_t quantized_value(float value, float inverse) {
  // Half away from zero: value - trunc(value) is exact in float.
  const float scaled = value * inverse, whole = std::trunc(scaled);
  const float rounded = whole + (std::fabs(scaled - whole) >= 0.5f ? std::copysign(1.0f, scaled) : 0.0f);
  return int8_t(std::clamp(rounded, -127.0f, 127.0f));
}

void dequantise_rows(const int8_t* values, const float* scales, int64_t rows, int64_t K, float* destination) {
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* source = values + r * K;
    float* row = destination + r * K;
    const __m256 scale = _mm256_set1_ps(scales[r]);
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
      const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(source + k));
      const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
      _mm256_storeu_ps(row + k, _mm256_mul_ps(v, scale));
    }
    for (; k < K; ++k) row[k] = float(source[k]) * scales[r];
  }
}

// out[mi, ni] for mi < mr (<= 4), ni < nr (<= 4): dot products of x rows and dequantised weight rows.
void micro_kernel(const float* x, int64_t x_stride, int64_t mr, const float* w, int64_t K, int64_t nr,
                  float result[4][4]) {
  __m256 acc[4][4];
  for (auto& row : acc)
    for (auto& a : row) a = _mm256_setzero_ps();
  const float* xr[4];
  const float* wr[4];
  for (int i = 0; i < 4; ++i) xr[i] = x + std::min<int64_t>(i, mr - 1) * x_stride;
  for (int j = 0; j < 4; ++j) wr[j] = w + std::min<int64_t>(j, nr - 1) * K;
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256 w0 = _mm256_loadu_ps(wr[0] + k), w1 = _mm256_loadu_ps(wr[1] + k);
    const __m256 w2 = _mm256_loadu_ps(wr[2] + k), w3 = _mm256_loadu_ps(wr[3] + k);
    for (int i = 0; i < 4; ++i) {
      const __m256 xv = _mm256_loadu_ps(xr[i] + k);
      acc[i][0] = _mm256_fmadd_ps(xv, w0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(xv, w1, acc[i][1]);
      acc[i][2] = _mm256_fmadd_ps(xv, w2, acc[i][2]);
      acc[i][3] = _mm256_fmadd_ps(xv, w3, acc[i][3]);
    }
  }
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      float sum = horizontal_sum(acc[i][j]);
      for (int64_t t = k; t < K; ++t) sum += xr[i][t] * wr[j][t];
      result[i][j] = sum;
    }
}

}  // namespace

void linear_int8_f32(ThreadPool& pool, const float* x, int64_t x_row_stride, const int8_t* values, const float* scales,
                     const float* bias, float* out, int64_t out_row_stride, int64_t M, int64_t N, int64_t K) {
  const int64_t blocks = (N + kBlockRows - 1) / kBlockRows;
  pool.parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
    std::vector<float> weights(size_t(kBlockRows * K));
    for (int64_t block = first; block < last; ++block) {
      const int64_t n0 = block * kBlockRows, rows = std::min(kBlockRows, N - n0);
      dequantise_rows(values + n0 * K, scales + n0, rows, K, weights.data());
      for (int64_t m0 = 0; m0 < M; m0 += 4) {
        const int64_t mr = std::min<int64_t>(4, M - m0);
        for (int64_t j0 = 0; j0 < rows; j0 += 4) {
          const int64_t nr = std::min<int64_t>(4, rows - j0);
          float result[4][4];
          micro_kernel(x + m0 * x_row_stride, x_row_stride, mr, weights.data() + j0 * K, K, nr, result);
          for (int64_t i = 0; i < mr; ++i)
            for (int64_t j = 0; j < nr; ++j) {
              const int64_t n = n0 + j0 + j;
              out[(m0 + i) * out_row_stride + n] = result[i][j] + (bias ? bias[n] : 0.0f);
            }
        }
      }
    }
  });
}

void quantize_int8_row(const float* row, int64_t K, int8_t* values, float* scale) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 max8 = _mm256_setzero_ps(), unordered8 = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256 v = _mm256_loadu_ps(row + k);
    max8 = _mm256_max_ps(max8, _mm256_and_ps(v, abs_mask));
    unordered8 = _mm256_or_ps(unordered8, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  float max_abs = horizontal_max(max8);
  bool not_finite = _mm256_movemask_ps(unordered8) != 0;
  for (; k < K; ++k) {
    max_abs = std::max(max_abs, std::fabs(row[k]));
    not_finite = not_finite || std::isnan(row[k]);
  }
  not_finite = not_finite || std::isinf(max_abs);
  *scale = not_finite                                              ? std::numeric_limits<float>::quiet_NaN()
           : max_abs >= 127.0f * std::numeric_limits<float>::min() ? max_abs / 127.0f
                                                                   : 0.0f;
  if (!(*scale > 0.0f)) {  // zeros (tiny rows; refused rows)
    std::fill(values, values + K, int8_t(0));
    return;
  }
  const float inverse = 1.0f / *scale;
  const __m256 inverse8 = _mm256_set1_ps(inverse), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  const __m256 sign_mask = _mm256_set1_ps(-0.0f), low = _mm256_set1_ps(-127.0f), high = _mm256_set1_ps(127.0f);
  for (k = 0; k + 8 <= K; k += 8) {  // quantized_value, eight at a time
    const __m256 scaled = _mm256_mul_ps(_mm256_loadu_ps(row + k), inverse8);
    const __m256 whole = _mm256_round_ps(scaled, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 away = _mm256_cmp_ps(_mm256_and_ps(_mm256_sub_ps(scaled, whole), abs_mask), half, _CMP_GE_OQ);
    const __m256 step = _mm256_and_ps(away, _mm256_or_ps(one, _mm256_and_ps(scaled, sign_mask)));
    const __m256 rounded = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(whole, step), low), high);
    const __m256i words = _mm256_cvtps_epi32(rounded);  // whole numbers: exact
    const __m128i shorts = _mm_packs_epi32(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(values + k), _mm_packs_epi16(shorts, shorts));
  }
  for (; k < K; ++k) values[k] = quantized_value(row[k], inverse);
}

}  // namespace k5::cpu
