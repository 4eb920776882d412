// ops::linear_int8 against a float64 reference on the dequantised weight, and the quantisation error.
#include "ops/linear_int8.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "support/compare.h"

namespace k5 {
namespace {

TEST(LinearInt8, MatchesDequantisedReference) {
  ContextOptions options;
  options.threads = 2;
  options.precision = Precision::fp32;  // float32 activations
  Context ctx(options);
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 5, 3}, {7, 37, 67}, {13, 64, 256}}) {
    std::vector<float> w(static_cast<size_t>(N * K)), x(static_cast<size_t>(M * K)), b(static_cast<size_t>(N));
    for (float& v : w) v = normal(rng);
    for (float& v : x) v = normal(rng);
    for (float& v : b) v = normal(rng);
    const Tensor weight = Tensor::from_f32(w, {N, K}), input = Tensor::from_f32(x, {M, K}),
                 bias = Tensor::from_f32(b, {N});
    const ops::Int8Weight q = ops::quantize_int8(ctx, weight.to(DType::BF16));
    const Tensor out = ops::linear_int8(ctx, input, q, &bias).clone();
    std::vector<float> reference(size_t(M * N)), exact(size_t(M * N));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double sum = b[size_t(n)], sum_exact = b[size_t(n)];
        for (int64_t k = 0; k < K; ++k) {
          const double dequantised = double(q.values.data<int8_t>()[n * K + k]) * q.scales.data<float>()[n];
          sum += x[size_t(m * K + k)] * dequantised;
          sum_exact += double(x[size_t(m * K + k)]) * w[size_t(n * K + k)];
        }
        reference[size_t(m * N + n)] = float(sum);
        exact[size_t(m * N + n)] = float(sum_exact);
      }
    EXPECT_LE(test::relative_l2(out.to_f32_vector(), reference), 1e-5) << M << "x" << N << "x" << K;
    // Symmetric per-channel int8 of Gaussian weights: about 1% relative error.
    EXPECT_LE(test::relative_l2(out.to_f32_vector(), exact), 3e-2) << M << "x" << N << "x" << K;
  }
}

TEST(LinearInt8, Bf16PrecisionRoundsActivationsOnly) {
  // Precision::bf16: activations rounded to BF16, int8 weights exact (AVX-512 BF16 kernel where present;
  // 40 rows take the expanded BF16-GEMM path).
  ContextOptions options;
  options.threads = 2;
  options.precision = Precision::bf16;
  Context ctx(options);
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 3, 5}, {6, 35, 70}, {9, 48, 512}, {40, 1100, 72}}) {
    std::vector<float> w(static_cast<size_t>(N * K)), x(static_cast<size_t>(M * K));
    for (float& v : w) v = normal(rng);
    for (float& v : x) v = normal(rng);
    const ops::Int8Weight q = ops::quantize_int8(ctx, Tensor::from_f32(w, {N, K}));
    const Tensor out = ops::linear_int8(ctx, Tensor::from_f32(x, {M, K}), q).clone();
    std::vector<float> reference(static_cast<size_t>(M * N));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double sum = 0;
        for (int64_t k = 0; k < K; ++k)
          sum += double(bf16_to_f32(f32_to_bf16(x[size_t(m * K + k)]))) * q.values.data<int8_t>()[n * K + k];
        reference[size_t(m * N + n)] = float(sum * q.scales.data<float>()[n]);
      }
    EXPECT_LE(test::relative_l2(out.to_f32_vector(), reference), 1e-5) << M << "x" << N << "x" << K;
  }
}

TEST(LinearInt8, Bf16GemmOverSeveralExpandedBlocks) {
  // 4100 x 4096 weights are past the 16M elements expanded at a time: two blocks (4096 rows, then 4), each into
  // its columns of a wider output (a column slice), with bias. Columns of both blocks against the reference.
  Context ctx{{.threads = 2, .precision = Precision::bf16, .log_level = LogLevel::quiet}};
  const int64_t M = 33, N = 4100, K = 4096;
  std::vector<float> w(size_t(N * K)), x(size_t(M * K)), b(static_cast<size_t>(N));
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(float(i % 10007) * 0.37f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(float(i) * 0.11f);
  for (size_t i = 0; i < b.size(); ++i) b[i] = 0.01f * float(i % 13);
  const ops::Int8Weight q = ops::quantize_int8(ctx, Tensor::from_f32(w, {N, K}));
  const Tensor bias = Tensor::from_f32(b, {N});
  Tensor wide = Tensor::zeros(DType::F32, {M, N + 3});
  Tensor out = wide.slice(1, 3, N + 3);
  ops::linear_int8(ctx, Tensor::from_f32(x, {M, K}), q, &bias, out);
  std::vector<float> computed, reference;
  for (int64_t m = 0; m < M; m += 8)
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(2047), int64_t(4095), int64_t(4096), int64_t(4099)}) {
      double sum = 0;
      for (int64_t k = 0; k < K; ++k)
        sum += double(bf16_to_f32(f32_to_bf16(x[size_t(m * K + k)]))) * q.values.data<int8_t>()[n * K + k];
      reference.push_back(float(sum * q.scales.data<float>()[n] + b[size_t(n)]));
      computed.push_back(out.data<float>()[m * out.stride(0) + n]);
    }
  EXPECT_LE(test::relative_l2(computed, reference), 1e-5);
  EXPECT_EQ(wide.data<float>()[2], 0.0f);  // columns outside the slice untouched
}

TEST(LinearInt8, QuantisationRoundsHalfAwayFromZero) {
  // Scale 1 (max 127): ties round away from zero, in the eight-wide loop and the tail alike; then random rows of
  // several lengths against std::lround.
  Context ctx{{.threads = 2, .precision = Precision::fp32, .log_level = LogLevel::quiet}};
  const std::vector<float> row{127.0f, 2.5f,  -2.5f,   0.49999997f, -0.5f,  126.5f, 3.4999998f, -0.0f, 0.5f,
                               1.5f,   -1.5f, -126.5f, 7.25f,       -7.75f, 0.0f,   2.5000002f, -3.5f};
  const std::vector<int8_t> expected{127, 3, -3, 0, -1, 127, 3, 0, 1, 2, -2, -127, 7, -8, 0, 3, -4};
  const ops::Int8Weight ties = ops::quantize_int8(ctx, Tensor::from_f32(row, {1, int64_t(row.size())}));
  EXPECT_EQ(ties.scales.data<float>()[0], 1.0f);
  EXPECT_EQ(std::vector<int8_t>(ties.values.data<int8_t>(), ties.values.data<int8_t>() + row.size()), expected);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  for (int64_t K : {1, 7, 8, 33, 300}) {
    std::vector<float> w(size_t(5 * K));
    for (float& v : w) v = normal(rng);
    const ops::Int8Weight q = ops::quantize_int8(ctx, Tensor::from_f32(w, {5, K}));
    for (int64_t n = 0; n < 5; ++n) {
      float max_abs = 0;
      for (int64_t k = 0; k < K; ++k) max_abs = std::max(max_abs, std::fabs(w[size_t(n * K + k)]));
      const float scale = max_abs / 127.0f;
      ASSERT_EQ(q.scales.data<float>()[n], scale);
      for (int64_t k = 0; k < K; ++k)
        ASSERT_EQ(q.values.data<int8_t>()[n * K + k],
                  std::clamp(std::lround(w[size_t(n * K + k)] * (1.0f / scale)), -127L, 127L))
            << K << " " << n << " " << k;
    }
  }
  const ops::Int8Weight zeros = ops::quantize_int8(ctx, Tensor::zeros(DType::F32, {2, 9}));
  EXPECT_EQ(zeros.scales.data<float>()[1], 0.0f);
  EXPECT_EQ(zeros.values.data<int8_t>()[17], 0);
}

TEST(LinearInt8, TinyRowsAreZeroAndNonFiniteWeightsRefused) {
  // A row whose scale would be subnormal (1 / scale overflows) quantises to zeros; NaN or infinity anywhere in a
  // row (eight-wide part or tail) is a one-line error naming the row.
  Context ctx{{.threads = 2, .precision = Precision::fp32, .log_level = LogLevel::quiet}};
  std::vector<float> tiny(19, 0.0f);
  tiny[0] = 1e-39f;
  tiny[12] = -5e-40f;
  const ops::Int8Weight q = ops::quantize_int8(ctx, Tensor::from_f32(tiny, {1, 19}));
  EXPECT_EQ(q.scales.data<float>()[0], 0.0f);
  EXPECT_EQ(std::vector<int8_t>(q.values.data<int8_t>(), q.values.data<int8_t>() + 19), std::vector<int8_t>(19, 0));
  // Just above: tiny but normal scales quantise as any row.
  for (float largest : {127.0f * std::numeric_limits<float>::min(), 1e-35f}) {
    tiny[0] = largest;
    tiny[12] = -largest / 2;
    const ops::Int8Weight small = ops::quantize_int8(ctx, Tensor::from_f32(tiny, {1, 19}));
    EXPECT_EQ(small.scales.data<float>()[0], largest / 127.0f);
    EXPECT_EQ(small.values.data<int8_t>()[0], 127);
    EXPECT_EQ(small.values.data<int8_t>()[12], std::lround(tiny[12] * (1.0f / (largest / 127.0f))));  // ~-63.5
  }
  for (size_t position : {size_t(3), size_t(17)})
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
      std::vector<float> w(2 * 19, 0.5f);
      w[19 + position] = bad;
      try {
        ops::quantize_int8(ctx, Tensor::from_f32(w, {2, 19}));
        ADD_FAILURE() << "a non-finite weight at " << position << " was quantised";
      } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("row 1 "), std::string::npos) << error.what();
      }
    }
}

TEST(LinearInt8, Bf16InputIsItsFloatValue) {
  // In bf16 mode a BF16 input (the DiT's normalised activations) gives what its float32 value gives, bit for
  // bit, on the direct kernel (5 rows) and the blocked GEMM (40 rows); fp32 mode refuses it.
  Context ctx{{.threads = 2, .precision = Precision::bf16, .log_level = LogLevel::quiet}};
  std::mt19937 rng(13);
  std::normal_distribution<float> normal;
  std::vector<float> w(size_t(70 * 96));
  for (float& v : w) v = normal(rng);
  const ops::Int8Weight q = ops::quantize_int8(ctx, Tensor::from_f32(w, {70, 96}));
  const Tensor bias = Tensor::from_f32(std::vector<float>(70, 0.25f), {70});
  for (int64_t M : {5, 40}) {
    std::vector<float> x(size_t(M * 96));
    for (float& v : x) v = bf16_to_f32(f32_to_bf16(normal(rng)));
    const Tensor x_f32 = Tensor::from_f32(x, {M, 96});
    const std::vector<float> from_f32 = ops::linear_int8(ctx, x_f32, q, &bias).to_f32_vector();
    const std::vector<float> from_bf16 = ops::linear_int8(ctx, x_f32.to(DType::BF16), q, &bias).to_f32_vector();
    EXPECT_EQ(from_bf16, from_f32) << M << " rows";
  }
  Context fp32{{.threads = 2, .precision = Precision::fp32, .log_level = LogLevel::quiet}};
  EXPECT_THROW(ops::linear_int8(fp32, Tensor::from_f32(std::vector<float>(96, 1.0f), {1, 96}).to(DType::BF16), q),
               Error);
}

TEST(LinearInt8, RejectsBadShapes) {
  Context ctx;
  const ops::Int8Weight q = ops::quantize_int8(ctx, Tensor::from_f32(std::vector<float>(12, 1.0f), {3, 4}));
  EXPECT_THROW(ops::linear_int8(ctx, Tensor::from_f32(std::vector<float>(10, 1.0f), {2, 5}), q), Error);
  EXPECT_THROW(ops::quantize_int8(ctx, Tensor::from_f32(std::vector<float>(4, 1.0f), {4})), Error);
}

}  // namespace
}  // namespace k5
