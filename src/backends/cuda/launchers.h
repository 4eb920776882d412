// Raw-pointer building blocks the CUDA backend's files share (defined in elementwise.cu unless noted). Pointers are
// device pointers; rows are `rows` x `width` floats, `stride` elements apart.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>

#include "backends/cuda/device_buffer.h"
#include "backends/cuda/kernels.h"

namespace k5::cuda {

// Blocks of `threads` for a grid-stride loop over `count` items: one item per thread, at most 2^20 blocks (each
// thread then loops over the rest), at least one.
inline unsigned grid_stride_blocks(int64_t count, int threads) {
  return unsigned(std::clamp<int64_t>((count + threads - 1) / threads, 1, int64_t(1) << 20));
}

void unary_rows(Unary function, const float* in, int64_t in_stride, float* out, int64_t out_stride, int64_t rows,
                int64_t width);
// float32 rows -> a contiguous BF16 matrix, rounded to nearest even exactly as k5::f32_to_bf16.
void round_rows_to_bf16(const float* in, int64_t in_stride, uint16_t* out, int64_t rows, int64_t width);
// The same rounding into a contiguous BF16 copy kept in `storage` (what a BF16 GEMM reads of F32 rows; linear.cpp).
uint16_t* bf16_copy_of_rows(const float* in, int64_t in_stride, int64_t rows, int64_t width,
                            std::unique_ptr<ScratchBuffer>& storage);
// rows[r][j] += bias[j] for `rows` rows of `width` floats.
void add_bias_rows(const float* bias, float* rows, int64_t stride, int64_t row_count, int64_t width);
void bf16_to_f32(const uint16_t* in, float* out, int64_t count);
// The float32 values of a contiguous F32 or BF16 bias of `count` values on the GPU (null for none): its own data,
// or a widened copy kept in `storage` (linear.cpp).
const float* bias_as_f32(const Tensor* bias, int64_t count, std::unique_ptr<ScratchBuffer>& storage);

}  // namespace k5::cuda
