// BF16 rounding on the GPU, shared by the kernels that write BF16 values or round to them.
#pragma once

#include <cstdint>

namespace k5::cuda {

// Bit-for-bit k5::f32_to_bf16 (src/core/dtype.h): round to nearest even, NaN kept quiet.
__device__ inline uint16_t to_bf16(float value) {
  uint32_t word = __float_as_uint(value);
  if ((word & 0x7fffffffu) > 0x7f800000u) return uint16_t((word >> 16) | 0x40);
  word += 0x7fffu + ((word >> 16) & 1u);
  return uint16_t(word >> 16);
}

// An output element of a kernel that writes F32 or BF16 (as uint16_t) rows.
__device__ inline void store(float* target, float value) { *target = value; }
__device__ inline void store(uint16_t* target, float value) { *target = to_bf16(value); }

}  // namespace k5::cuda
