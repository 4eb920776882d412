// CPU kernel behind ops::linear_int8 (validated arguments only).
#pragma once

#include <cstdint>

#include "core/thread_pool.h"

namespace k5::cpu {

// out[m, n] = sum_k x[m, k] * values[n, k] * scales[n] + bias[n]; x rows at x_row_stride, out rows at
// out_row_stride, values contiguous [N, K]; bias may be null.
void linear_int8_f32(ThreadPool& pool, const float* x, int64_t x_row_stride, const int8_t* values, const float* scales,
                     const float* bias, float* out, int64_t out_row_stride, int64_t M, int64_t N, int64_t K);

// The same with the activations rounded to BF16 and AVX-512 BF16 dot products (needs avx512_bf16). Up to 4
// rows (decoding) take a streaming path instead: with AVX512-VNNI, int16 products of the weights and the
// BF16-rounded activations in blocks of 64 with power-of-two scales (exact but for elements more than 2^7
// below their block's largest; see linear_int8_avx512.cpp), else float products.
void linear_int8_bf16_avx512(ThreadPool& pool, const float* x, int64_t x_row_stride, const int8_t* values,
                             const float* scales, const float* bias, float* out, int64_t out_row_stride, int64_t M,
                             int64_t N, int64_t K);

// One weight row (float32, K values) to int8 with its scale: scale = max|row| / 127, value = row * (1 / scale)
// rounded half away from zero (std::lround), within +-127. A row whose scale would not be a normal float
// (max|row| < 127 * FLT_MIN, all zeros included) gets scale 0 and zeros; a row holding a NaN or an infinity gets
// a NaN scale (and zeros) for the caller to refuse.
void quantize_int8_row(const float* row, int64_t K, int8_t* values, float* scale);

// values -> BF16 (exact: |q| <= 127), `count` elements; needs AVX-512 BF16.
void int8_to_bf16_avx512(const int8_t* values, int64_t count, uint16_t* destination);

}  // namespace k5::cpu
