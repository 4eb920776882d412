#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/dtype.h"

namespace k5 {
namespace {

TEST(DType, NamesRoundTrip) {
  for (DType dtype : {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3, DType::I8, DType::I32, DType::I64,
                      DType::U8, DType::BOOL}) {
    auto parsed = dtype_from_name(dtype_name(dtype));
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, dtype);
  }
  EXPECT_FALSE(dtype_from_name("F64").has_value());
}

TEST(DType, BFloat16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is exactly half-way between two bf16 values: ties go to the even mantissa (1.0).
  EXPECT_EQ(f32_to_bf16(1.0f + 1.0f / 256), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3.0f / 256), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(DType, Float8E4M3) {
  EXPECT_EQ(f8e4m3_to_f32(0x38), 1.0f);
  EXPECT_EQ(f8e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(f8e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_TRUE(std::isnan(f8e4m3_to_f32(0x7f)));
  for (int code = 0; code < 0x7f; ++code) EXPECT_EQ(f32_to_f8e4m3(f8e4m3_to_f32(uint8_t(code))), code);
  EXPECT_EQ(f32_to_f8e4m3(1000.0f), 0x7e);
}

TEST(DType, BulkConversionMatchesScalar) {
  std::vector<float> values(37);
  for (size_t i = 0; i < values.size(); ++i) values[i] = std::sin(float(i)) * 100;
  // Special values and exact rounding ties inside the vectorised part.
  values[1] = NAN;
  values[2] = INFINITY;
  values[3] = -0.0f;
  values[4] = 1.0f + 1.0f / 256;
  values[5] = 1.0f + 3.0f / 256;
  values[6] = -3.0e38f;
  std::vector<uint16_t> half(values.size());
  convert_from_f32(values.data(), half.data(), DType::F16, values.size());
  std::vector<float> back(values.size());
  convert_to_f32(half.data(), DType::F16, back.data(), values.size());
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(half[i], f32_to_f16(values[i])) << i;
  convert_from_f32(values.data(), half.data(), DType::BF16, values.size());
  convert_to_f32(half.data(), DType::BF16, back.data(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(half[i], f32_to_bf16(values[i])) << i;
  }
}

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::from_f32({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor column = t.select(1, 1);
  EXPECT_EQ(column.shape(), (Shape{2}));
  EXPECT_EQ(column.to_f32_vector(), (std::vector<float>{1, 4}));
  Tensor transposed = t.transpose(0, 1);
  EXPECT_FALSE(transposed.is_contiguous());
  EXPECT_EQ(transposed.contiguous().to_f32_vector(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  t.data<float>()[1] = 10;
  EXPECT_EQ(column.to_f32_vector()[0], 10);
  EXPECT_EQ(t.reshape({3, -1}).shape(), (Shape{3, 2}));
  EXPECT_THROW(transposed.reshape({6}), Error);
  EXPECT_THROW(t.reshape({4, 2}), Error);
  EXPECT_THROW(t.slice(0, 1, 3), Error);
}

TEST(Tensor, ConvertsDTypes) {
  Tensor t = Tensor::from_f32({1.5f, -2.25f, 3.0f}, {3});
  Tensor half = t.to(DType::BF16);
  EXPECT_EQ(half.dtype(), DType::BF16);
  EXPECT_EQ(half.to(DType::F32).to_f32_vector(), t.to_f32_vector());
  Tensor big = Tensor::empty(DType::I64, {2, 2});
  big.data<int64_t>()[1] = (int64_t(1) << 40) + 1;
  EXPECT_EQ(big.transpose(0, 1).contiguous().data<int64_t>()[2], (int64_t(1) << 40) + 1);
}

}  // namespace
}  // namespace k5
