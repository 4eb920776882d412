// ops::linear_int8 against a float64 reference on the dequantised weight, and the quantisation error.
#include "ops/linear_int8.h"

#include <gtest/gtest.h>

#include <cmath>
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
  // 40 rows take the blocked BF16-GEMM path, over one 1024-row block).
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

TEST(LinearInt8, RejectsBadShapes) {
  Context ctx;
  const ops::Int8Weight q = ops::quantize_int8(ctx, Tensor::from_f32(std::vector<float>(12, 1.0f), {3, 4}));
  EXPECT_THROW(ops::linear_int8(ctx, Tensor::from_f32(std::vector<float>(10, 1.0f), {2, 5}), q), Error);
  EXPECT_THROW(ops::quantize_int8(ctx, Tensor::from_f32(std::vector<float>(4, 1.0f), {4})), Error);
}

}  // namespace
}  // namespace k5
