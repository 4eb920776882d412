// Element types and their conversions to and from float32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace k5 {

enum class DType : uint8_t { F32, BF16, F16, F8_E4M3, I8, I32, I64, U8, BOOL };

size_t dtype_size(DType dtype);
// Names as safetensors spells them ("F32", "BF16", "F8_E4M3", ...).
std::string_view dtype_name(DType dtype);
std::optional<DType> dtype_from_name(std::string_view name);
bool is_floating(DType dtype);

struct bf16 {
  uint16_t bits;
};
struct f16 {
  uint16_t bits;
};

inline float bf16_to_f32(uint16_t bits) {
  uint32_t word = uint32_t(bits) << 16;
  float value;
  std::memcpy(&value, &word, 4);
  return value;
}

// Round to nearest even, as PyTorch's float -> bfloat16 conversion does; NaN stays NaN.
inline uint16_t f32_to_bf16(float value) {
  uint32_t word;
  std::memcpy(&word, &value, 4);
  if ((word & 0x7fffffffu) > 0x7f800000u) return uint16_t((word >> 16) | 0x40);
  word += 0x7fffu + ((word >> 16) & 1u);
  return uint16_t(word >> 16);
}

float f16_to_f32(uint16_t bits);
uint16_t f32_to_f16(float value);
// OCP FP8 E4M3 ("e4m3fn": no infinities, 0x7f/0xff are NaN), as torch.float8_e4m3fn.
float f8e4m3_to_f32(uint8_t bits);
uint8_t f32_to_f8e4m3(float value);

// Bulk conversions of contiguous arrays (vectorised where the CPU allows).
void convert_to_f32(const void* source, DType source_dtype, float* destination, size_t count);
void convert_from_f32(const float* source, void* destination, DType destination_dtype, size_t count);

}  // namespace k5
