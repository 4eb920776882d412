// Raw-pointer building blocks the CUDA backend's files share (defined in elementwise.cu). Pointers are device
// pointers; rows are `rows` x `width` floats, `stride` elements apart.
#pragma once

#include <cstdint>

#include "backends/cuda/kernels.h"

namespace k5::cuda {

void unary_rows(Unary function, const float* in, int64_t in_stride, float* out, int64_t out_stride, int64_t rows,
                int64_t width);
// float32 rows -> a contiguous BF16 matrix, rounded to nearest even exactly as k5::f32_to_bf16.
void round_rows_to_bf16(const float* in, int64_t in_stride, uint16_t* out, int64_t rows, int64_t width);
// rows[r][j] += bias[j] for `rows` rows of `width` floats.
void add_bias_rows(const float* bias, float* rows, int64_t stride, int64_t row_count, int64_t width);
void bf16_to_f32(const uint16_t* in, float* out, int64_t count);

}  // namespace k5::cuda
