#include "core/dtype.h"

#include <immintrin.h>

#include <cmath>

#include "core/error.h"

namespace k5 {

namespace {
struct DTypeInfo {
  DType dtype;
  std::string_view name;
  size_t size;
  bool floating;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::F32, "F32", 4, true},     {DType::BF16, "BF16", 2, true}, {DType::F16, "F16", 2, true},
    {DType::F8_E4M3, "F8_E4M3", 1, true}, {DType::I8, "I8", 1, false},  {DType::I32, "I32", 4, false},
    {DType::I64, "I64", 8, false},    {DType::U8, "U8", 1, false},     {DType::BOOL, "BOOL", 1, false},
};
const DTypeInfo& info(DType dtype) { return kDTypes[static_cast<size_t>(dtype)]; }
}  // namespace

size_t dtype_size(DType dtype) { return info(dtype).size; }
std::string_view dtype_name(DType dtype) { return info(dtype).name; }
bool is_floating(DType dtype) { return info(dtype).floating; }

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& entry : kDTypes)
    if (entry.name == name) return entry.dtype;
  return std::nullopt;
}

float f16_to_f32(uint16_t bits) { return _cvtsh_ss(bits); }
uint16_t f32_to_f16(float value) { return _cvtss_sh(value, _MM_FROUND_TO_NEAREST_INT); }

float f8e4m3_to_f32(uint8_t bits) {
  const uint32_t sign = bits >> 7, exponent = (bits >> 3) & 0xf, mantissa = bits & 0x7;
  float magnitude;
  if (exponent == 0xf && mantissa == 0x7) return std::nanf("");
  if (exponent == 0)
    magnitude = std::ldexp(float(mantissa), -9);  // subnormal: m/8 * 2^-6
  else
    magnitude = std::ldexp(1.0f + float(mantissa) / 8.0f, int(exponent) - 7);
  return sign ? -magnitude : magnitude;
}

uint8_t f32_to_f8e4m3(float value) {
  if (std::isnan(value)) return 0x7f;
  const uint8_t sign = std::signbit(value) ? 0x80 : 0;
  float magnitude = std::fabs(value);
  if (magnitude >= 448.0f) return sign | 0x7e;  // saturate to the largest finite value, as torch does
  // Search by rounding: find the nearest representable value with ties to even mantissa.
  uint8_t best = 0;
  float best_error = magnitude;
  for (uint8_t code = 1; code < 0x7f; ++code) {
    const float error = std::fabs(f8e4m3_to_f32(code) - magnitude);
    if (error < best_error || (error == best_error && (code & 1) == 0)) {
      best = code;
      best_error = error;
    }
  }
  return sign | best;
}

void convert_to_f32(const void* source, DType source_dtype, float* destination, size_t count) {
  switch (source_dtype) {
    case DType::F32:
      std::memcpy(destination, source, count * 4);
      return;
    case DType::BF16: {
      const auto* bits = static_cast<const uint16_t*>(source);
      size_t i = 0;
      for (; i + 8 <= count; i += 8) {
        __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bits + i));
        __m256i widened = _mm256_slli_epi32(_mm256_cvtepu16_epi32(packed), 16);
        _mm256_storeu_ps(destination + i, _mm256_castsi256_ps(widened));
      }
      for (; i < count; ++i) destination[i] = bf16_to_f32(bits[i]);
      return;
    }
    case DType::F16: {
      const auto* bits = static_cast<const uint16_t*>(source);
      size_t i = 0;
      for (; i + 8 <= count; i += 8)
        _mm256_storeu_ps(destination + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bits + i))));
      for (; i < count; ++i) destination[i] = f16_to_f32(bits[i]);
      return;
    }
    case DType::F8_E4M3: {
      float table[256];
      for (int code = 0; code < 256; ++code) table[code] = f8e4m3_to_f32(uint8_t(code));
      const auto* bytes = static_cast<const uint8_t*>(source);
      for (size_t i = 0; i < count; ++i) destination[i] = table[bytes[i]];
      return;
    }
    case DType::I8:
      for (size_t i = 0; i < count; ++i) destination[i] = float(static_cast<const int8_t*>(source)[i]);
      return;
    case DType::I32:
      for (size_t i = 0; i < count; ++i) destination[i] = float(static_cast<const int32_t*>(source)[i]);
      return;
    case DType::I64:
      for (size_t i = 0; i < count; ++i) destination[i] = float(static_cast<const int64_t*>(source)[i]);
      return;
    case DType::U8:
    case DType::BOOL:
      for (size_t i = 0; i < count; ++i) destination[i] = float(static_cast<const uint8_t*>(source)[i]);
      return;
  }
}

void convert_from_f32(const float* source, void* destination, DType destination_dtype, size_t count) {
  switch (destination_dtype) {
    case DType::F32:
      std::memcpy(destination, source, count * 4);
      return;
    case DType::BF16: {
      auto* bits = static_cast<uint16_t*>(destination);
      size_t i = 0;
      // The scalar f32_to_bf16 rounding, 8 lanes at a time: add 0x7fff + lsb, keep the high half; NaNs quieted.
      const __m256i magnitude_mask = _mm256_set1_epi32(0x7fffffff), infinity = _mm256_set1_epi32(0x7f800000);
      const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff), quiet = _mm256_set1_epi32(0x40);
      for (; i + 8 <= count; i += 8) {
        const __m256i word = _mm256_castps_si256(_mm256_loadu_ps(source + i));
        const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(word, 16), one);
        const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(word, _mm256_add_epi32(bias, lsb)), 16);
        const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(word, magnitude_mask), infinity);
        const __m256i quieted = _mm256_or_si256(_mm256_srli_epi32(word, 16), quiet);
        const __m256i result = _mm256_blendv_epi8(rounded, quieted, nan);
        // Pack the 8 low halves: packus works per 128-bit lane, then fix the lane order.
        const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(result, result), 0xd8);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(bits + i), _mm256_castsi256_si128(packed));
      }
      for (; i < count; ++i) bits[i] = f32_to_bf16(source[i]);
      return;
    }
    case DType::F16: {
      auto* bits = static_cast<uint16_t*>(destination);
      size_t i = 0;
      for (; i + 8 <= count; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(bits + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(source + i), _MM_FROUND_TO_NEAREST_INT));
      for (; i < count; ++i) bits[i] = f32_to_f16(source[i]);
      return;
    }
    case DType::F8_E4M3:
      for (size_t i = 0; i < count; ++i) static_cast<uint8_t*>(destination)[i] = f32_to_f8e4m3(source[i]);
      return;
    case DType::I8:
      for (size_t i = 0; i < count; ++i) static_cast<int8_t*>(destination)[i] = int8_t(std::lrint(source[i]));
      return;
    case DType::I32:
      for (size_t i = 0; i < count; ++i) static_cast<int32_t*>(destination)[i] = int32_t(source[i]);
      return;
    case DType::I64:
      for (size_t i = 0; i < count; ++i) static_cast<int64_t*>(destination)[i] = int64_t(source[i]);
      return;
    case DType::U8:
      for (size_t i = 0; i < count; ++i) static_cast<uint8_t*>(destination)[i] = uint8_t(source[i]);
      return;
    case DType::BOOL:
      for (size_t i = 0; i < count; ++i) static_cast<uint8_t*>(destination)[i] = source[i] != 0.0f;
      return;
  }
}

}  // namespace k5
