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
      float max_abs = 0.0f;
      for (float v : row) max_abs = std::max(max_abs, std::fabs(v));
      const float scale = max_abs / 127.0f;
      const float inverse = scale > 0.0f ? 1.0f / scale : 0.0f;
      scales[n] = scale;
      for (int64_t k = 0; k < K; ++k)
        values[n * K + k] = int8_t(std::clamp(std::lround(row[size_t(k)] * inverse), -127L, 127L));
    }
  });
  return result;
}

namespace {

// Prompts (many rows) are GEMM-bound: there a block of weight rows is expanded to BF16 (int8 is exact in
// BF16) and multiplied by the BF16 ops::linear GEMM, the per-channel scale and bias applied to its float32
// output. Few rows (decoding) stay on the direct kernel, which reads the int8 weight once.
constexpr int64_t kGemmMinRows = 32;
constexpr int64_t kGemmBlockRows = 1024;

void linear_int8_by_blocks(Context& ctx, const Tensor& x, const Int8Weight& weight, const float* bias, Tensor& out) {
  const int64_t M = x.size(0), N = weight.out_features(), K = weight.in_features();
  const float* scales = weight.scales.data<float>();
  for (int64_t n0 = 0; n0 < N; n0 += kGemmBlockRows) {
    auto scope = ctx.workspace().scope();
    const int64_t rows = std::min(kGemmBlockRows, N - n0);
    Tensor block = ctx.workspace().tensor(DType::BF16, {rows, K});
    ctx.pool().parallel_for(0, rows, 8, [&](int64_t first, int64_t last) {
      cpu::int8_to_bf16_avx512(weight.values.data<int8_t>() + (n0 + first) * K, (last - first) * K,
                               block.data<uint16_t>() + first * K);
    });
    Tensor product = ctx.workspace().tensor(DType::F32, {M, rows});
    linear(ctx, x, block, nullptr, product);
    ctx.pool().parallel_for(0, M, 4, [&](int64_t first, int64_t last) {
      for (int64_t m = first; m < last; ++m) {
        const float* source = product.data<float>() + m * rows;
        float* destination = out.data<float>() + m * out.stride(0) + n0;
        for (int64_t j = 0; j < rows; ++j) destination[j] = source[j] * scales[n0 + j] + (bias ? bias[n0 + j] : 0.0f);
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
  K5_CHECK(x.dtype() == DType::F32 && x.dim() == 2 && x.size(1) == K && x.stride(1) == 1,
           "linear_int8: x must be F32 [M, ", K, "] with contiguous rows, got ", x.describe());
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
  std::vector<float> bias_f32;
  if (bias) bias_f32 = bias->to_f32_vector();
  // Precision::bf16 rounds the activations to BF16 (as ops::linear does with BF16 weights): the BF16
  // dot-product kernel where the CPU has one, else rounded activations into the float32 kernel, so both
  // paths compute the same thing. fp32 keeps float32 activations.
  if (ctx.precision() == Precision::bf16 && cpu_features().avx512_bf16) {
    if (M < kGemmMinRows) {
      cpu::linear_int8_bf16_avx512(ctx.pool(), x.data<float>(), x.stride(0), weight.values.data<int8_t>(),
                                   weight.scales.data<float>(), bias ? bias_f32.data() : nullptr, out.data<float>(),
                                   out.stride(0), M, N, K);
    } else {
      linear_int8_by_blocks(ctx, x, weight, bias ? bias_f32.data() : nullptr, out);
    }
    return;
  }
  auto scope = ctx.workspace().scope();
  Tensor rounded;
  if (ctx.precision() == Precision::bf16) {
    rounded = ctx.workspace().tensor(DType::F32, {M, K});
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k)
        rounded.data<float>()[m * K + k] = bf16_to_f32(f32_to_bf16(x.data<float>()[m * x.stride(0) + k]));
  }
  const Tensor& input = rounded.defined() ? rounded : x;
  cpu::linear_int8_f32(ctx.pool(), input.data<float>(), input.stride(0), weight.values.data<int8_t>(),
                       weight.scales.data<float>(), bias ? bias_f32.data() : nullptr, out.data<float>(), out.stride(0),
                       M, N, K);
}

Tensor linear_int8(Context& ctx, const Tensor& x, const Int8Weight& weight, const Tensor* bias) {
  Tensor out = ctx.workspace().tensor(DType::F32, {x.size(0), weight.out_features()});
  linear_int8(ctx, x, weight, bias, out);
  return out;
}

}  // namespace k5::ops
