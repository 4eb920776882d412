// The decoding (one to four activation rows) matrix-vector paths of ops::linear (BF16 weights) and
// ops::linear_int8 against float64 references, on shapes with row and group tails and on activations with
// outliers (the int8 path writes the BF16-rounded activations as int16 in blocks of 64 with a power-of-two
// scale each: elements more than 2^7 below their block's largest are rounded).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <tuple>

#include "ops/linear.h"
#include "ops/linear_int8.h"
#include "support/compare.h"

namespace k5 {
namespace {

// Gaussian activations, every 97th element 300x larger and every 89th 1e-4x smaller (LLM hidden states
// after RMSNorm have a few channels orders of magnitude above the rest).
std::vector<float> activations_with_outliers(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> values(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    float v = normal(rng);
    if (i % 97 == 5) v *= 300.0f;
    if (i % 89 == 3) v *= 1e-4f;
    values[size_t(i)] = v;
  }
  return values;
}

std::vector<float> gaussian(std::mt19937& rng, int64_t count) {
  std::normal_distribution<float> normal;
  std::vector<float> values(static_cast<size_t>(count));
  for (float& v : values) v = normal(rng);
  return values;
}

double round_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }

TEST(Gemv, Int8DecodeRowsMatchBf16RoundedReference) {
  Context ctx({.threads = 2, .precision = Precision::bf16});
  std::mt19937 rng(21);
  for (auto [N, K] : {std::tuple<int64_t, int64_t>{45, 3584 + 7}, {3, 5}, {9, 64}, {6, 130}, {37, 18944}}) {
    for (int64_t M = 1; M <= 4; ++M) {
      SCOPED_TRACE(testing::Message() << M << "x" << N << "x" << K);
      const std::vector<float> w = gaussian(rng, N * K), b = gaussian(rng, N);
      const std::vector<float> x = activations_with_outliers(M * K, uint32_t(M * 1000 + K));
      const ops::Int8Weight q = ops::quantize_int8(ctx, Tensor::from_f32(w, {N, K}));
      const Tensor bias = Tensor::from_f32(b, {N});
      const Tensor out = ops::linear_int8(ctx, Tensor::from_f32(x, {M, K}), q, &bias).clone();
      std::vector<float> reference(static_cast<size_t>(M * N)), unrounded(static_cast<size_t>(M * N));
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          double sum = 0, sum_unrounded = 0;
          for (int64_t k = 0; k < K; ++k) {
            const int8_t value = q.values.data<int8_t>()[n * K + k];
            sum += round_bf16(x[size_t(m * K + k)]) * value;
            sum_unrounded += double(x[size_t(m * K + k)]) * value;
          }
          reference[size_t(m * N + n)] = float(sum * q.scales.data<float>()[n] + b[size_t(n)]);
          unrounded[size_t(m * N + n)] = float(sum_unrounded * q.scales.data<float>()[n] + b[size_t(n)]);
        }
      // Elements more than 2^7 below their block's largest are rounded to 2^-16 of it: with 300x outliers
      // that is ~1e-4 of the output (measured 2e-5 .. 1.4e-4), a fifth of what rounding the activations to
      // BF16 already costs (~1e-3; and int8 weights ~1e-2). Without outliers it is exact up to summation
      // order (LinearInt8.Bf16PrecisionRoundsActivationsOnly: 1e-5).
      const double error = test::relative_l2(out.to_f32_vector(), reference);
      EXPECT_LE(error, 3e-4);
      EXPECT_LE(error, 0.3 * test::relative_l2(unrounded, reference));
    }
  }
}

TEST(Gemv, Int8DecodeAllZeroAndTinyBlocks) {
  // A zero block and a block of denormal-range values (skipped as zero) must not produce NaN or Inf.
  Context ctx({.threads = 2, .precision = Precision::bf16});
  const int64_t N = 5, K = 200;
  std::vector<float> w(static_cast<size_t>(N * K), 0.5f), x(static_cast<size_t>(K), 0.0f);
  for (int64_t k = 64; k < 128; ++k) x[size_t(k)] = 1e-39f;
  for (int64_t k = 128; k < K; ++k) x[size_t(k)] = 2.0f;
  const ops::Int8Weight q = ops::quantize_int8(ctx, Tensor::from_f32(w, {N, K}));
  const std::vector<float> out = ops::linear_int8(ctx, Tensor::from_f32(x, {1, K}), q).to_f32_vector();
  for (const float v : out) EXPECT_FLOAT_EQ(v, 72.0f);  // 72 elements of 2.0 times 0.5
}

TEST(Gemv, Int8DecodeKeepsNaNAndInfinity) {
  Context ctx({.threads = 2, .precision = Precision::bf16});
  const int64_t N = 3, K = 100;
  const ops::Int8Weight q = ops::quantize_int8(ctx, Tensor::from_f32(std::vector<float>(size_t(N * K), 0.25f), {N, K}));
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    std::vector<float> x(static_cast<size_t>(K), 1.0f);
    x[70] = bad;
    const std::vector<float> out = ops::linear_int8(ctx, Tensor::from_f32(x, {1, K}), q).to_f32_vector();
    for (const float v : out) EXPECT_FALSE(std::isfinite(v)) << bad;
  }
}

TEST(Gemv, Bf16DecodeRowsMatchReference) {
  Context ctx({.threads = 2, .precision = Precision::bf16});
  std::mt19937 rng(22);
  for (auto [N, K] : {std::tuple<int64_t, int64_t>{3, 5}, {45, 3584 + 7}, {9, 64}, {6, 130}}) {
    for (int64_t M = 1; M <= 4; ++M) {
      SCOPED_TRACE(testing::Message() << M << "x" << N << "x" << K);
      const std::vector<float> w = gaussian(rng, N * K), b = gaussian(rng, N);
      const std::vector<float> x = activations_with_outliers(M * K, uint32_t(M * 1000 + K));
      const Tensor bias = Tensor::from_f32(b, {N});
      const Tensor out = ops::linear(ctx, Tensor::from_f32(x, {M, K}), Tensor::from_f32(w, {N, K}).to(DType::BF16), &bias);
      std::vector<float> reference(static_cast<size_t>(M * N));
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          double sum = b[size_t(n)];
          for (int64_t k = 0; k < K; ++k) sum += round_bf16(x[size_t(m * K + k)]) * round_bf16(w[size_t(n * K + k)]);
          reference[size_t(m * N + n)] = float(sum);
        }
      EXPECT_LE(test::relative_l2(out.to_f32_vector(), reference), 1e-5);
    }
  }
}

}  // namespace
}  // namespace k5
