// GEMMs through cuBLASLt (the CUDA side of src/ops/linear.h). cuBLASLt is column-major, so a row-major
// out[M, N] = x[M, K] * W[N, K]^T is computed as its transpose: out^T[N, M] = W^T(as stored) * x^T, with W
// read transposed in place (PyTorch's [out_features, in_features] layout, no copy). The bias rides the GEMM
// epilogue; activations run as a separate pass because cuBLASLt's GELU epilogue is not the exact (erf) GELU
// the CPU path computes.
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <memory>

#include "backends/cpu/rows.h"
#include "backends/cuda/check.h"
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/gemm.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"

namespace k5::cuda {

namespace {

void run_gemm(const Gemm& g) {
  if (try_gemm(g)) return;
  // Not every type combination has a bias epilogue: then the bias is a separate pass.
  if (g.bias) {
    Gemm without_bias = g;
    without_bias.bias = nullptr;
    if (try_gemm(without_bias)) return add_bias_rows(g.bias, g.d, g.ldd, g.n, g.m);
  }
  fail("linear: cuBLASLt has no algorithm for ", g.m, "x", g.n, "x", g.k,
       g.input_type == CUDA_R_16BF ? " BF16" : " F32", " (leading dimensions ", g.lda, ", ", g.ldb, ", ", g.ldd, ")");
}

Unary unary_for(ops::Activation activation) {
  switch (activation) {
    case ops::Activation::gelu_erf:
      return Unary::gelu_erf;
    case ops::Activation::gelu_tanh:
      return Unary::gelu_tanh;
    case ops::Activation::silu:
      return Unary::silu;
    case ops::Activation::quick_gelu:
      return Unary::quick_gelu;
    case ops::Activation::none:
      break;
  }
  fail("linear: no activation to apply");
}

}  // namespace

const float* bias_as_f32(const Tensor* bias, int64_t count, std::unique_ptr<ScratchBuffer>& storage) {
  if (!bias) return nullptr;
  if (bias->dtype() == DType::F32) return bias->data<float>();
  storage = std::make_unique<ScratchBuffer>(size_t(count) * sizeof(float));
  bf16_to_f32(bias->data<uint16_t>(), storage->as<float>(), count);
  return storage->as<float>();
}

uint16_t* bf16_copy_of_rows(const float* in, int64_t in_stride, int64_t rows, int64_t width,
                            std::unique_ptr<ScratchBuffer>& storage) {
  storage = std::make_unique<ScratchBuffer>(size_t(rows * width) * sizeof(uint16_t));
  round_rows_to_bf16(in, in_stride, storage->as<uint16_t>(), rows, width);
  return storage->as<uint16_t>();
}

void linear(Context&, const Tensor& x, const Tensor& weight, const Tensor* bias, Tensor& out,
            ops::Activation activation) {
  // The same contract as the CPU path (src/backends/cpu/linear.cpp): BF16 activations go to the GEMM as they
  // are, F32 ones are rounded to BF16 first when the weights are BF16.
  const bool bf16_input = x.dtype() == DType::BF16;
  K5_CHECK(!bf16_input || (weight.dtype() == DType::BF16 && x.is_contiguous() && x.dim() >= 1), "linear: BF16 input ",
           x.describe(), " needs contiguous rows and BF16 weights, got ", weight.describe());
  const cpu::Rows input = bf16_input ? cpu::bf16_rows_of(x, "linear input") : cpu::rows_of(x, "linear input");
  const cpu::Rows output = cpu::rows_of(out, "linear output");
  K5_CHECK(weight.dim() == 2 && weight.is_contiguous(), "linear: weight must be a contiguous [N, K] matrix, got ",
           weight.describe());
  K5_CHECK(weight.dtype() == DType::F32 || weight.dtype() == DType::BF16, "linear: unsupported weight dtype ",
           weight.describe());
  const int64_t n = weight.size(0), k = weight.size(1), m = input.count;
  K5_CHECK(input.width == k, "linear: input ", x.describe(), " does not match weight ", weight.describe());
  K5_CHECK(output.count == m && output.width == n, "linear: output ", out.describe(), " should be [", m, ", ", n, "]");
  if (bias)
    K5_CHECK(bias->numel() == n && bias->is_contiguous() && bias->device() == Device::CUDA &&
                 (bias->dtype() == DType::F32 || bias->dtype() == DType::BF16),
             "linear: bias ", bias->describe(), " should be a contiguous F32/BF16 [", n, "] on the GPU");
  if (m == 0 || n == 0) return;
  K5_CHECK(k > 0, "linear: empty inner dimension in ", weight.describe());

  std::unique_ptr<ScratchBuffer> bias_f32;
  const float* bias_values = bias_as_f32(bias, n, bias_f32);

  Gemm gemm{.input_type = CUDA_R_32F,
            .a = weight.raw(),
            .a_transposed = true,
            .lda = k,
            .b = input.data,
            .ldb = input.stride,
            .d = output.data,
            .ldd = output.stride,
            .m = n,
            .n = m,
            .k = k,
            .bias = bias_values};
  std::unique_ptr<ScratchBuffer> rounded;
  if (weight.dtype() == DType::BF16) {
    gemm.input_type = CUDA_R_16BF;
    if (bf16_input) {
      gemm.b = x.raw();
      gemm.ldb = k;
    } else {
      gemm.b = bf16_copy_of_rows(input.data, input.stride, m, k, rounded);
      gemm.ldb = k;
    }
  }
  run_gemm(gemm);
  if (activation != ops::Activation::none)
    unary_rows(unary_for(activation), output.data, output.stride, output.data, output.stride, m, n);
}

void matmul(Context&, const Tensor& a, const Tensor& b, Tensor& out, bool accumulate) {
  // Row-major out[M, N] = a[M, K] * b[K, N] is column-major out^T = b^T * a^T, both read as stored.
  const cpu::Rows left = cpu::rows_of(a, "matmul a"), right = cpu::rows_of(b, "matmul b"),
                  result = cpu::rows_of(out, "matmul out");
  K5_CHECK(left.width == right.count && result.count == left.count && result.width == right.width,
           "matmul: ", a.describe(), " x ", b.describe(), " -> ", out.describe());
  if (result.count == 0 || result.width == 0) return;
  K5_CHECK(left.width > 0, "matmul: empty inner dimension in ", a.describe());
  run_gemm({.input_type = CUDA_R_32F,
            .a = right.data,
            .a_transposed = false,
            .lda = right.stride,
            .b = left.data,
            .ldb = left.stride,
            .d = result.data,
            .ldd = result.stride,
            .m = right.width,
            .n = left.count,
            .k = left.width,
            .bias = nullptr,
            .accumulate = accumulate});
}

}  // namespace k5::cuda
