// Each op of the transformer vocabulary against a straightforward double-precision reference.
#include <gtest/gtest.h>

#include <cmath>

#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "support/compare.h"
#include "support/random.h"

namespace k5 {
namespace {

using test::random_tensor;

// Naive attention in double: q [Lq, Hq, D], k/v [Lk, Hkv, D].
std::vector<float> reference_attention(const Tensor& q, const Tensor& k, const Tensor& v, const uint8_t* key_mask,
                                       bool causal, const std::vector<uint8_t>* block_mask = nullptr, int block = 64) {
  const int64_t lq = q.size(0), hq = q.size(1), d = q.size(2), lk = k.size(0), hk = k.size(1);
  const Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  const float *Q = qc.data<float>(), *K = kc.data<float>(), *V = vc.data<float>();
  const int64_t kb = (lk + block - 1) / block, qb = (lq + block - 1) / block;
  std::vector<float> out(size_t(lq * hq * d));
  for (int64_t h = 0; h < hq; ++h) {
    const int64_t kvh = h / (hq / hk);
    for (int64_t i = 0; i < lq; ++i) {
      std::vector<double> s(size_t(lk), -INFINITY);
      double maximum = -INFINITY;
      for (int64_t j = 0; j < lk; ++j) {
        if (key_mask && !key_mask[j]) continue;
        if (causal && j > i + (lk - lq)) continue;
        if (block_mask && !(*block_mask)[size_t((h * qb + i / block) * kb + j / block)]) continue;
        double dot = 0;
        for (int64_t c = 0; c < d; ++c) dot += double(Q[(i * hq + h) * d + c]) * K[(j * hk + kvh) * d + c];
        s[size_t(j)] = dot / std::sqrt(double(d));
        maximum = std::max(maximum, s[size_t(j)]);
      }
      double sum = 0;
      for (auto& value : s) sum += (value = std::exp(value - maximum));
      for (int64_t c = 0; c < d; ++c) {
        double acc = 0;
        for (int64_t j = 0; j < lk; ++j) acc += s[size_t(j)] * V[(j * hk + kvh) * d + c];
        out[size_t((i * hq + h) * d + c)] = float(acc / sum);
      }
    }
  }
  return out;
}

TEST(CpuKernels, AttentionDenseMaskCausalGqa) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  for (int64_t d : {8, 64, 80, 128}) {
    for (bool causal : {false, true}) {
      const int64_t lq = 37, lk = causal ? 37 : 101;
      Tensor q = random_tensor({lq, 4, d}, 1), k = random_tensor({lk, 2, d}, 2), v = random_tensor({lk, 2, d}, 3);
      Tensor mask = Tensor::empty(DType::U8, {lk});
      for (int64_t j = 0; j < lk; ++j) mask.data<uint8_t>()[j] = (j % 7) != 3;
      Tensor out = Tensor::empty(DType::F32, {lq, 4, d});
      ops::AttentionOptions options;
      options.causal = causal;
      options.key_mask = &mask;
      ops::attention(ctx, q, k, v, out, options);
      EXPECT_LT(test::relative_l2(out.to_f32_vector(), reference_attention(q, k, v, mask.data<uint8_t>(), causal)),
                1e-6)
          << "d=" << d << " causal=" << causal;
    }
  }
}

TEST(CpuKernels, AttentionOnStridedViewsOfFusedProjection) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  Tensor qkv = random_tensor({50, 3, 2, 16}, 4);  // [L, (q,k,v), H, D]
  Tensor q = qkv.select(1, 0), k = qkv.select(1, 1), v = qkv.select(1, 2);
  Tensor out = Tensor::empty(DType::F32, {50, 2, 16});
  ops::attention(ctx, q, k, v, out);
  EXPECT_LT(test::relative_l2(out.to_f32_vector(), reference_attention(q, k, v, nullptr, false)), 1e-6);
}

TEST(CpuKernels, BlockSparseAttentionMatchesMaskedReference) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  const int64_t l = 64 * 5 + 20, heads = 2, d = 64, blocks = 6;
  Tensor q = random_tensor({l, heads, d}, 5), k = random_tensor({l, heads, d}, 6), v = random_tensor({l, heads, d}, 7);
  Tensor mask = Tensor::empty(DType::U8, {heads, blocks, blocks});
  std::vector<uint8_t> kept(size_t(heads * blocks * blocks));
  for (size_t i = 0; i < kept.size(); ++i)
    kept[i] = mask.data<uint8_t>()[i] = (i % 3 == 0) || (i % blocks == i / blocks % blocks);
  Tensor out = Tensor::empty(DType::F32, {l, heads, d});
  ops::block_sparse_attention(ctx, q, k, v, mask, 64, out);
  EXPECT_LT(test::relative_l2(out.to_f32_vector(), reference_attention(q, k, v, nullptr, false, &kept)), 1e-6);
}

TEST(CpuKernels, AttentionInBf16Mode) {
  Context ctx({.threads = 2, .precision = Precision::bf16});
  const int64_t l = 64 * 3 + 5;
  Tensor q = random_tensor({l, 4, 64}, 21), k = random_tensor({l, 2, 64}, 22), v = random_tensor({l, 2, 64}, 23);
  Tensor out = Tensor::empty(DType::F32, {l, 4, 64});
  ops::AttentionOptions options;
  options.causal = true;
  ops::attention(ctx, q, k, v, out, options);
  EXPECT_LT(test::relative_l2(out.to_f32_vector(), reference_attention(q, k, v, nullptr, true)), 1e-2);
  Tensor sparse_k = random_tensor({l, 4, 64}, 24), sparse_v = random_tensor({l, 4, 64}, 25);
  Tensor mask = Tensor::empty(DType::U8, {4, 4, 4});
  std::vector<uint8_t> kept(64);
  for (size_t i = 0; i < kept.size(); ++i) kept[i] = mask.data<uint8_t>()[i] = (i * 7) % 3 != 0;
  ops::block_sparse_attention(ctx, q, sparse_k, sparse_v, mask, 64, out);
  EXPECT_LT(test::relative_l2(out.to_f32_vector(), reference_attention(q, sparse_k, sparse_v, nullptr, false, &kept)),
            1e-2);
}

TEST(CpuKernels, LinearFloatAndBf16) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  const int64_t m = 33, k = 70, n = 45;
  Tensor x = random_tensor({m, k}, 8), w = random_tensor({n, k}, 9, 0.1f), b = random_tensor({n}, 10);
  std::vector<float> expected(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = b.data<float>()[j];
      for (int64_t c = 0; c < k; ++c) acc += double(x.data<float>()[i * k + c]) * w.data<float>()[j * k + c];
      expected[size_t(i * n + j)] = float(0.5 * acc * (1 + std::erf(acc / std::sqrt(2.0))));
    }
  Tensor out = Tensor::empty(DType::F32, {m, n});
  ops::linear(ctx, x, w, &b, out, ops::Activation::gelu_erf);
  EXPECT_LT(test::relative_l2(out.to_f32_vector(), expected), 1e-6);
  ops::linear(ctx, x, w.to(DType::BF16), &b, out, ops::Activation::gelu_erf);
  EXPECT_LT(test::relative_l2(out.to_f32_vector(), expected), 1e-2);
  Tensor rounded_input = Tensor::empty(DType::F32, {m, n});
  ops::linear(ctx, x, w.to(DType::BF16), &b, rounded_input, ops::Activation::gelu_erf);
  ops::linear(ctx, x.to(DType::BF16), w.to(DType::BF16), &b, out, ops::Activation::gelu_erf);
  EXPECT_EQ(out.to_f32_vector(), rounded_input.to_f32_vector());  // BF16 input == F32 input rounded inside
  // One to four rows take the streaming matrix-vector path: the same products as the GEMM up to summation order.
  for (const int64_t rows : {1, 3, 4, 5}) {
    SCOPED_TRACE(rows);
    const int64_t wide = 3584 + 7;  // a 7B hidden size plus a tail
    Tensor xr = random_tensor({rows, wide}, 30), wr = random_tensor({n, wide}, 31, 0.1f);
    std::vector<float> want(size_t(rows * n));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = b.data<float>()[j];
        for (int64_t c = 0; c < wide; ++c)
          acc += double(bf16_to_f32(f32_to_bf16(xr.data<float>()[i * wide + c]))) *
                 bf16_to_f32(f32_to_bf16(wr.data<float>()[j * wide + c]));
        want[size_t(i * n + j)] = float(acc);
      }
    Tensor got = Tensor::empty(DType::F32, {rows, n});
    ops::linear(ctx, xr, wr.to(DType::BF16), &b, got);
    EXPECT_LT(test::relative_l2(got.to_f32_vector(), want), 1e-5);
  }
  EXPECT_THROW(ops::linear(ctx, x.to(DType::BF16), w, &b, out), Error);
  EXPECT_THROW(ops::linear(ctx, x, random_tensor({n, k + 1}, 1), nullptr, out), Error);
}

TEST(CpuKernels, MatmulAndAccumulate) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  const int64_t m = 45, k = 7, n = 70;
  const Tensor a = random_tensor({m, k}, 11), b = random_tensor({k, n}, 12);
  const Tensor start = random_tensor({m, n}, 13);
  std::vector<double> product(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t c = 0; c < k; ++c)
        product[size_t(i * n + j)] += double(a.data<float>()[i * k + c]) * b.data<float>()[c * n + j];
  std::vector<float> expected(product.size()), accumulated(product.size());
  for (size_t i = 0; i < product.size(); ++i) {
    expected[i] = float(product[i]);
    accumulated[i] = float(product[i] + start.data<float>()[i]);
  }
  Tensor out = start.clone();
  ops::matmul(ctx, a, b, out);
  EXPECT_LT(test::relative_l2(out.to_f32_vector(), expected), 1e-6);
  out = start.clone();
  ops::matmul(ctx, a, b, out, /*accumulate=*/true);
  EXPECT_LT(test::relative_l2(out.to_f32_vector(), accumulated), 1e-6);
  EXPECT_THROW(ops::matmul(ctx, b, a, out), Error);
}

TEST(CpuKernels, NormsAndModulation) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  const int64_t rows = 9, width = 300;
  Tensor x = random_tensor({rows, width}, 11, 3.0f), w = random_tensor({width}, 12), b = random_tensor({width}, 13);
  Tensor out = Tensor::empty(DType::F32, {rows, width});
  std::vector<float> ln(size_t(rows * width)), rms(size_t(rows * width)), ssn(size_t(rows * width));
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0, sq = 0;
    for (int64_t i = 0; i < width; ++i) mean += x.data<float>()[r * width + i];
    mean /= width;
    for (int64_t i = 0; i < width; ++i) {
      const double c = x.data<float>()[r * width + i] - mean;
      var += c * c;
      sq += double(x.data<float>()[r * width + i]) * x.data<float>()[r * width + i];
    }
    var /= width;
    for (int64_t i = 0; i < width; ++i) {
      const double value = x.data<float>()[r * width + i];
      const double normed = (value - mean) / std::sqrt(var + 1e-5);
      ln[size_t(r * width + i)] = float(normed * w.data<float>()[i] + b.data<float>()[i]);
      rms[size_t(r * width + i)] = float(value / std::sqrt(sq / width + 1e-6) * w.data<float>()[i]);
      ssn[size_t(r * width + i)] = float(normed * (1 + w.data<float>()[i]) + b.data<float>()[i]);
    }
  }
  ops::layer_norm(ctx, x, &w, &b, 1e-5f, out);
  EXPECT_LT(test::relative_l2(out.to_f32_vector(), ln), 1e-6);
  ops::rms_norm(ctx, x, &w, 1e-6f, out);
  EXPECT_LT(test::relative_l2(out.to_f32_vector(), rms), 1e-6);
  ops::scale_shift_norm(ctx, x, w, b, 1e-5f, out);
  EXPECT_LT(test::relative_l2(out.to_f32_vector(), ssn), 1e-6);
  Tensor residual = x.clone();
  ops::gated_residual(ctx, residual, out, w);
  for (int64_t i = 0; i < rows * width; ++i)
    EXPECT_FLOAT_EQ(residual.data<float>()[i],
                    std::fma(w.data<float>()[i % width], out.data<float>()[i], x.data<float>()[i]));
}

// The ops that may write BF16 (the DiT's normalised linear inputs, its GELU) write exactly their F32 results,
// rounded: what a linear with BF16 weights would have made of the F32 tensor.
TEST(CpuKernels, Bf16OutputsAreTheRoundedF32Results) {
  Context ctx({.threads = 2, .precision = Precision::bf16});
  const Tensor x = random_tensor({37, 1001}, 30, 2.0f);  // not a multiple of the 8-wide vector path
  const Tensor modulation = random_tensor({1001, 2}, 31, 0.5f);
  const auto rounded = [](const Tensor& t) { return t.to(DType::BF16).to_f32_vector(); };
  Tensor expected = Tensor::empty(DType::F32, x.shape()), out = Tensor::empty(DType::BF16, x.shape());
  // Strided modulation (the scalar path) and contiguous (the vector path).
  for (const Tensor& scale : {modulation.select(1, 1), modulation.select(1, 1).contiguous()}) {
    ops::scale_shift_norm(ctx, x, scale, modulation.select(1, 0).contiguous(), 1e-6f, expected);
    ops::scale_shift_norm(ctx, x, scale, modulation.select(1, 0).contiguous(), 1e-6f, out);
    EXPECT_EQ(out.to_f32_vector(), rounded(expected));
  }
  for (auto* activation : {&ops::gelu, &ops::silu, &ops::quick_gelu}) {
    activation(ctx, x, expected);
    activation(ctx, x, out);
    EXPECT_EQ(out.to_f32_vector(), rounded(expected));
  }
  Tensor strided = Tensor::empty(DType::BF16, {1001, 37}).transpose(0, 1);
  EXPECT_THROW(ops::gelu(ctx, x, strided), Error);
  EXPECT_THROW(ops::scale_shift_norm(ctx, x, modulation.select(1, 1), modulation.select(1, 0), 1e-6f, strided), Error);
}

TEST(CpuKernels, NablaSelectionRejectsBadOperands) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  const Tensor pool = random_tensor({2, 5, 8}, 32), sta = Tensor::zeros(DType::U8, {5, 5});
  Tensor mask = Tensor::empty(DType::U8, {2, 5, 5});
  EXPECT_NO_THROW(ops::nabla_select_blocks(ctx, pool, pool, sta, 0.9, mask));
  const Tensor other = random_tensor({2, 4, 8}, 33), flat = random_tensor({10, 8}, 34);
  const Tensor small_sta = Tensor::zeros(DType::U8, {4, 4}), float_sta = Tensor::zeros(DType::F32, {5, 5});
  Tensor small_mask = Tensor::empty(DType::U8, {2, 4, 5}), float_mask = Tensor::empty(DType::F32, {2, 5, 5});
  EXPECT_THROW(ops::nabla_select_blocks(ctx, pool, other, sta, 0.9, mask), Error);
  EXPECT_THROW(ops::nabla_select_blocks(ctx, flat, flat, sta, 0.9, mask), Error);
  EXPECT_THROW(ops::nabla_select_blocks(ctx, pool, pool, small_sta, 0.9, mask), Error);
  EXPECT_THROW(ops::nabla_select_blocks(ctx, pool, pool, float_sta, 0.9, mask), Error);
  EXPECT_THROW(ops::nabla_select_blocks(ctx, pool, pool, sta, 0.9, small_mask), Error);
  EXPECT_THROW(ops::nabla_select_blocks(ctx, pool, pool, sta, 0.9, float_mask), Error);
}

TEST(CpuKernels, ElementwiseAndRope) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  Tensor x = random_tensor({5, 3, 8}, 14, 2.0f), y = random_tensor({5, 3, 8}, 15);
  Tensor out = Tensor::empty(DType::F32, {5, 3, 8});
  const float* a = x.data<float>();
  ops::silu(ctx, x, out);
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_NEAR(out.data<float>()[i], a[i] / (1 + std::exp(-a[i])), 1e-6);
  ops::gelu(ctx, x, out);
  for (int64_t i = 0; i < x.numel(); ++i)
    EXPECT_NEAR(out.data<float>()[i], 0.5 * a[i] * (1 + std::erf(a[i] / std::sqrt(2.0))), 1e-6);
  ops::swiglu(ctx, x, y, out);
  for (int64_t i = 0; i < x.numel(); ++i)
    EXPECT_NEAR(out.data<float>()[i], a[i] / (1 + std::exp(-a[i])) * y.data<float>()[i], 1e-5);
  ops::softmax(ctx, x, out);
  for (int64_t r = 0; r < 15; ++r) {
    double sum = 0;
    for (int i = 0; i < 8; ++i) sum += out.data<float>()[r * 8 + i];
    EXPECT_NEAR(sum, 1.0, 1e-6);
  }
  Tensor cos = random_tensor({5, 4}, 16), sin = random_tensor({5, 4}, 17);
  for (bool interleaved : {true, false}) {
    Tensor rotated = x.clone();
    interleaved ? ops::rope_interleaved(ctx, rotated, cos, sin) : ops::rope_half_split(ctx, rotated, cos, sin);
    for (int64_t t = 0; t < 5; ++t)
      for (int64_t h = 0; h < 3; ++h)
        for (int64_t i = 0; i < 4; ++i) {
          const int64_t first = interleaved ? 2 * i : i, second = interleaved ? 2 * i + 1 : i + 4;
          const float* v = a + (t * 3 + h) * 8;
          const float c = cos.data<float>()[t * 4 + i], s = sin.data<float>()[t * 4 + i];
          EXPECT_NEAR(rotated.data<float>()[(t * 3 + h) * 8 + first], c * v[first] - s * v[second], 1e-5);
          EXPECT_NEAR(rotated.data<float>()[(t * 3 + h) * 8 + second], s * v[first] + c * v[second], 1e-5);
        }
  }
}

}  // namespace
}  // namespace k5
