// GEMM through oneDNN (bench/results/gemm-library.md says why): float32 via dnnl_sgemm, BF16 weights via the
// matmul primitive (BF16 inputs, float32 accumulation and output). Weights stay in PyTorch's [N, K] layout,
// possibly memory-mapped; oneDNN reads them transposed without a persistent copy. A few rows times BF16
// weights (decoding one token) take a streaming matrix-vector path instead: see gemv_bf16.
#include <dnnl.h>
#include <immintrin.h>

#include "backends/cpu/gemv_bf16_avx512.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/onednn_matmul.h"
#include "backends/cpu/rows.h"
#include "core/cpu_features.h"

namespace k5::cpu {

namespace {

std::vector<float> bias_as_f32(const Tensor* bias, int64_t n) {
  if (!bias) return {};
  K5_CHECK(bias->numel() == n, "linear: bias ", bias->describe(), " does not match ", n, " output features");
  return bias->to_f32_vector();
}

// Rows at or below this count go through gemv_bf16: decoding is bound by reading the weights once, and a
// GEMM call's packing and threading cost more than the product (bench/results/qwen-decode-cpu.md).
constexpr int64_t kGemvMaxRows = 4;

// Baseline (AVX2) path: BF16 weights widened to float by shifts, float32 FMAs.
float dot_bf16(const uint16_t* w, const float* x, int64_t k) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i));
    const __m256 lo = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_castsi256_si128(packed)), 16));
    const __m256 hi =
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm256_extracti128_si256(packed, 1)), 16));
    acc0 = _mm256_fmadd_ps(lo, _mm256_loadu_ps(x + i), acc0);
    acc1 = _mm256_fmadd_ps(hi, _mm256_loadu_ps(x + i + 8), acc1);
  }
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  float total = _mm_cvtss_f32(sum);
  for (; i < k; ++i) total += bf16_to_f32(w[i]) * x[i];
  return total;
}

// out[r, j] = x[r, :] . w[j, :] (+ bias[j]) for BF16 inputs and weights, float32 accumulation; each weight row
// is read from memory once for all the input rows.
void gemv_bf16(Context& ctx, const uint16_t* x, int64_t m, int64_t k, const uint16_t* w, int64_t n, const float* bias,
               const Rows& out) {
  if (cpu_features().avx512_bf16) return gemv_bf16_avx512(ctx, x, m, k, w, n, bias, out);
  std::vector<float> xf(size_t(m * k));
  for (int64_t i = 0; i < m * k; ++i) xf[size_t(i)] = bf16_to_f32(x[i]);
  ctx.pool().parallel_for(0, n, 64, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j)
      for (int64_t r = 0; r < m; ++r)
        out.row(r)[j] = dot_bf16(w + j * k, xf.data() + r * k, k) + (bias ? bias[j] : 0.0f);
  });
}

}  // namespace

void linear(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, Tensor& out,
            ops::Activation activation) {
  // BF16 activations (with BF16 weights) go to the GEMM as they are; F32 ones are rounded to BF16 first.
  const bool bf16_input = x.dtype() == DType::BF16;
  K5_CHECK(!bf16_input || (weight.dtype() == DType::BF16 && x.is_contiguous() && x.dim() >= 1), "linear: BF16 input ",
           x.describe(), " needs contiguous rows and BF16 weights, got ", weight.describe());
  const Rows input = bf16_input ? bf16_rows_of(x, "linear input") : rows_of(x, "linear input");
  const Rows output = rows_of(out, "linear output");
  K5_CHECK(weight.dim() == 2 && weight.is_contiguous(), "linear: weight must be a contiguous [N, K] matrix, got ",
           weight.describe());
  const int64_t n = weight.size(0), k = weight.size(1), m = input.count;
  K5_CHECK(input.width == k, "linear: input ", x.describe(), " does not match weight ", weight.describe());
  K5_CHECK(output.count == m && output.width == n, "linear: output ", out.describe(), " should be [", m, ", ", n, "]");
  if (m == 0 || n == 0) return;
  const std::vector<float> bias_values = bias_as_f32(bias, n);

  if (weight.dtype() == DType::F32) {
    K5_CHECK(dnnl_sgemm('N', 'T', m, n, k, 1.0f, input.data, input.stride, weight.data<float>(), k, 0.0f, output.data,
                        output.stride) == dnnl_success,
             "linear: oneDNN sgemm failed for ", x.describe(), " x ", weight.describe());
  } else if (weight.dtype() == DType::BF16) {
    auto scope = ctx.workspace().scope();
    const uint16_t* x_bf16 = bf16_input ? x.data<uint16_t>() : nullptr;
    if (!bf16_input) {
      auto* rounded = static_cast<uint16_t*>(ctx.workspace().allocate(size_t(m * k) * 2));
      ctx.pool().parallel_for(0, m, std::max<int64_t>(1, 16384 / k), [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) convert_from_f32(input.row(r), rounded + r * k, DType::BF16, size_t(k));
      });
      x_bf16 = rounded;
    }
    if (m <= kGemvMaxRows)
      gemv_bf16(ctx, x_bf16, m, k, weight.data<uint16_t>(), n, bias ? bias_values.data() : nullptr, output);
    else
      matmul_bf16({.m = m,
                   .n = n,
                   .k = k,
                   .a = x_bf16,
                   .lda = k,
                   .b = weight.data<uint16_t>(),
                   .ldb = k,
                   .b_transposed = true,
                   .c = output.data,
                   .ldc = output.stride,
                   .bias = bias ? bias_values.data() : nullptr});
    if (activation == ops::Activation::none) return;
  } else {
    fail("linear: unsupported weight dtype ", weight.describe());
  }

  const bool bias_pending = weight.dtype() == DType::F32 && bias;
  if (!bias_pending && activation == ops::Activation::none) return;
  ctx.pool().parallel_for(0, m, std::max<int64_t>(1, 8192 / n), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* row = output.row(r);
      if (bias_pending)
        for (int64_t j = 0; j < n; ++j) row[j] += bias_values[size_t(j)];
      switch (activation) {
        case ops::Activation::none:
          break;
        case ops::Activation::gelu_erf:
          unary_inplace(Unary::gelu_erf, row, n);
          break;
        case ops::Activation::gelu_tanh:
          unary_inplace(Unary::gelu_tanh, row, n);
          break;
        case ops::Activation::silu:
          unary_inplace(Unary::silu, row, n);
          break;
        case ops::Activation::quick_gelu:
          unary_inplace(Unary::quick_gelu, row, n);
          break;
      }
    }
  });
}

void matmul(Context&, const Tensor& a, const Tensor& b, Tensor& out, bool accumulate) {
  const Rows left = rows_of(a, "matmul a"), right = rows_of(b, "matmul b"), result = rows_of(out, "matmul out");
  K5_CHECK(left.width == right.count && result.count == left.count && result.width == right.width,
           "matmul: ", a.describe(), " x ", b.describe(), " -> ", out.describe());
  if (result.count == 0 || result.width == 0) return;
  K5_CHECK(dnnl_sgemm('N', 'N', left.count, right.width, left.width, 1.0f, left.data, left.stride, right.data,
                      right.stride, accumulate ? 1.0f : 0.0f, result.data, result.stride) == dnnl_success,
           "matmul: oneDNN sgemm failed");
}

}  // namespace k5::cpu
