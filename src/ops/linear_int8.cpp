// ops::linear_int8: argument checks, quantisation, dispatch to the CPU or CUDA kernel.
#include "ops/linear_int8.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/linear_int8.h"
#include "backends/cuda/kernels.h"
#include "core/cpu_features.h"
#include "ops/dispatch.h"
#include "ops/linear.h"

namespace k5::ops {

Int8Weight quantize_int8(Context& ctx, const Tensor& weight) {
  K5_CHECK(weight.dim() == 2 && (weight.dtype() == DType::F32 || weight.dtype() == DType::BF16) &&
               weight.device() == Device::CPU,
           "quantize_int8: weight must be F32/BF16 [N, K] on the CPU, got ", weight.describe());
  const Tensor source = weight.contiguous();
  const int64_t N = source.size(0), K = source.size(1);
  Int8Weight result{Tensor::empty(DType::I8, {N, K}), Tensor::empty(DType::F32, {N})};
  const size_t element = dtype_size(source.dtype());
  const auto* bytes = static_cast<const uint8_t*>(source.raw());
  int8_t* values = result.values.data<int8_t>();
  float* scales = result.scales.data<float>();
  ctx.pool().parallel_for(0, N, 16, [&](int64_t first, int64_t last) {
    std::vector<float> row(static_cast<size_t>(K));
    for (int64_t n = first; n < last; ++n) {
      convert_to_f32(bytes + size_t(n * K) * element, source.dtype(), row.data(), size_t(K));
      cpu::quantize_int8_row(row.data(), K, values + n * K, scales + n);
      K5_CHECK(std::isfinite(scales[n]), "quantize_int8: row ", n, " of ", weight.describe(),
               " holds NaN or infinite values");
    }
  });
  return result;
}

namespace {

// Prompts and visual tokens (many rows) are GEMM-bound: there the weight is expanded to BF16 (int8 is exact in
// BF16) in blocks of rows, each multiplied by the BF16 ops::linear GEMM straight into its columns of `out`, which
// then get their per-channel scale and the bias in float32. The activations are rounded to BF16 once. Few rows
// (decoding) stay on the direct kernel, which reads the int8 weight once.
constexpr int64_t kGemmMinRows = 32;
// 32 MB of BF16 at a time: Video Lite's layers and Qwen's attention projections whole; larger layers (Qwen's MLP,
// Image Lite's and Pro's feed-forward, lm_head) in several blocks.
constexpr int64_t kExpandedElements = int64_t(16) << 20;

void linear_int8_by_blocks(Context& ctx, const Tensor& x, const Int8Weight& weight, const float* bias, Tensor& out) {
  const int64_t M = x.size(0), N = weight.out_features(), K = weight.in_features();
  const float* scales = weight.scales.data<float>();
  auto scope = ctx.workspace().scope();
  Tensor input = x;
  if (x.dtype() == DType::F32) {
    input = ctx.workspace().tensor(DType::BF16, {M, K});
    ctx.pool().parallel_for(0, M, std::max<int64_t>(1, 16384 / K), [&](int64_t first, int64_t last) {
      for (int64_t m = first; m < last; ++m)
        convert_from_f32(x.data<float>() + m * x.stride(0), input.data<uint16_t>() + m * K, DType::BF16, size_t(K));
    });
  }
  const int64_t block_rows = std::clamp<int64_t>(kExpandedElements / K, 1, N);
  Tensor block = ctx.workspace().tensor(DType::BF16, {block_rows, K});
  for (int64_t n0 = 0; n0 < N; n0 += block_rows) {
    const int64_t rows = std::min(block_rows, N - n0);
    ctx.pool().parallel_for(0, rows, 8, [&](int64_t first, int64_t last) {
      cpu::int8_to_bf16_avx512(weight.values.data<int8_t>() + (n0 + first) * K, (last - first) * K,
                               block.data<uint16_t>() + first * K);
    });
    Tensor columns = out.slice(1, n0, n0 + rows);
    linear(ctx, input, block.slice(0, 0, rows), nullptr, columns);
    ctx.pool().parallel_for(0, M, std::max<int64_t>(1, 8192 / rows), [&](int64_t first, int64_t last) {
      for (int64_t m = first; m < last; ++m) {
        float* row = columns.data<float>() + m * out.stride(0);
        for (int64_t j = 0; j < rows; ++j) row[j] = row[j] * scales[n0 + j] + (bias ? bias[n0 + j] : 0.0f);
      }
    });
  }
}

}  // namespace

void linear_int8(Context& ctx, const Tensor& x, const Int8Weight& weight, const Tensor* bias, Tensor& out) {
  K5_CHECK(weight.values.dtype() == DType::I8 && weight.values.dim() == 2 && weight.values.is_contiguous(),
           "linear_int8: weight values must be contiguous I8 [N, K], got ", weight.values.describe());
  const int64_t N = weight.out_features(), K = weight.in_features();
  K5_CHECK(weight.scales.dtype() == DType::F32 && weight.scales.numel() == N && weight.scales.is_contiguous(),
           "linear_int8: scales must be F32 [", N, "], got ", weight.scales.describe());
  K5_CHECK(x.dim() == 2 && x.size(1) == K &&
               ((x.dtype() == DType::F32 && x.stride(1) == 1) ||
                (x.dtype() == DType::BF16 && x.is_contiguous() && ctx.precision() == Precision::bf16)),
           "linear_int8: x must be F32 [M, ", K, "] with contiguous rows (or contiguous BF16 in bf16 mode), got ",
           x.describe());
  const int64_t M = x.size(0);
  K5_CHECK(out.dtype() == DType::F32 && out.dim() == 2 && out.size(0) == M && out.size(1) == N && out.stride(1) == 1,
           "linear_int8: out must be F32 [", M, ", ", N, "], got ", out.describe());
  if (bias) K5_CHECK(bias->numel() == N, "linear_int8: bias must have ", N, " elements, got ", bias->describe());
  if constexpr (kCudaBuild)
    if (on_cuda("linear_int8", x, weight.values, weight.scales, out)) {
      if (bias) common_device("linear_int8 (bias)", x, *bias);
      return cuda::linear_int8(ctx, x, weight, bias, out);
    }
  device_of("linear_int8", x, weight.values, weight.scales, out);
  if (bias) device_of("linear_int8 (bias)", x, *bias);
  if (M == 0 || N == 0) return;
  std::vector<float> bias_f32;
  if (bias) bias_f32 = bias->to_f32_vector();
  const float* bias_values = bias ? bias_f32.data() : nullptr;
  if (ctx.precision() == Precision::bf16 && cpu_features().avx512_bf16 && M >= kGemmMinRows && K > 0)
    return linear_int8_by_blocks(ctx, x, weight, bias_values, out);
  // The kernels below read float32 rows (BF16 inputs are exact in float32). Precision::bf16 rounds them to BF16
  // (as ops::linear does with BF16 weights): the BF16 dot-product kernel where the CPU has one, else rounded
  // activations into the float32 kernel, so both paths compute the same thing. fp32 keeps float32 activations.
  auto scope = ctx.workspace().scope();
  Tensor input = x;
  if (x.dtype() == DType::BF16) {
    input = ctx.workspace().tensor(DType::F32, {M, K});
    convert_to_f32(x.raw(), DType::BF16, input.data<float>(), size_t(M * K));
  }
  if (ctx.precision() == Precision::bf16 && cpu_features().avx512_bf16)
    return cpu::linear_int8_bf16_avx512(ctx.pool(), input.data<float>(), input.stride(0), weight.values.data<int8_t>(),
                                        weight.scales.data<float>(), bias_values, out.data<float>(), out.stride(0), M,
                                        N, K);
  if (ctx.precision() == Precision::bf16 && x.dtype() == DType::F32) {
    input = ctx.workspace().tensor(DType::F32, {M, K});
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k)
        input.data<float>()[m * K + k] = bf16_to_f32(f32_to_bf16(x.data<float>()[m * x.stride(0) + k]));
  }
  cpu::linear_int8_f32(ctx.pool(), input.data<float>(), input.stride(0), weight.values.data<int8_t>(),
                       weight.scales.data<float>(), bias_values, out.data<float>(), out.stride(0), M, N, K);
}

Tensor linear_int8(Context& ctx, const Tensor& x, const Int8Weight& weight, const Tensor* bias) {
  Tensor out = ctx.workspace(x.device()).tensor(DType::F32, {x.size(0), weight.out_features()});
  linear_int8(ctx, x, weight, bias, out);
  return out;
}

}  // namespace k5::ops
