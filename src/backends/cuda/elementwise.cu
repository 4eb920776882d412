// Element-wise ops and softmax (the CUDA side of src/ops/elementwise.h), plus the small conversions the GEMM wrapper
// needs: operand checks and launches; the kernels are in elementwise.cuh. Simple bandwidth-bound passes: the fused
// versions belong in the ops that use them.
#include "backends/cpu/rows.h"
#include "backends/cuda/check.h"
#include "backends/cuda/elementwise.cuh"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"
#include "ops/operands.h"

namespace k5::cuda {

namespace {

constexpr int kThreads = kElementwiseThreads;

template <typename Out>
void launch_unary(Unary function, const float* in, int64_t in_stride, Out* out, int64_t out_stride, int64_t rows,
                  int64_t width) {
  if (rows * width == 0) return;
  const dim3 blocks = row_grid(rows, width, kThreads);
  switch (function) {
    case Unary::silu:
      unary_kernel<Unary::silu><<<blocks, kThreads>>>(in, in_stride, out, out_stride, rows, width);
      break;
    case Unary::gelu_erf:
      unary_kernel<Unary::gelu_erf><<<blocks, kThreads>>>(in, in_stride, out, out_stride, rows, width);
      break;
    case Unary::gelu_tanh:
      unary_kernel<Unary::gelu_tanh><<<blocks, kThreads>>>(in, in_stride, out, out_stride, rows, width);
      break;
    case Unary::quick_gelu:
      unary_kernel<Unary::quick_gelu><<<blocks, kThreads>>>(in, in_stride, out, out_stride, rows, width);
      break;
  }
  K5_CUDA_CHECK_LAUNCH("unary_kernel");
}

using ops::check_same_shape;
using ops::contiguous_f32;

}  // namespace

void unary_rows(Unary function, const float* in, int64_t in_stride, float* out, int64_t out_stride, int64_t rows,
                int64_t width) {
  launch_unary(function, in, in_stride, out, out_stride, rows, width);
}

void round_rows_to_bf16(const float* in, int64_t in_stride, uint16_t* out, int64_t rows, int64_t width) {
  if (rows * width == 0) return;
  round_to_bf16_kernel<<<row_grid(rows, width, kThreads), kThreads>>>(in, in_stride, out, rows, width);
  K5_CUDA_CHECK_LAUNCH("round_to_bf16_kernel");
}

void add_bias_rows(const float* bias, float* rows, int64_t stride, int64_t row_count, int64_t width) {
  if (row_count * width == 0) return;
  add_bias_kernel<<<row_grid(row_count, width, kThreads), kThreads>>>(bias, rows, stride, row_count, width);
  K5_CUDA_CHECK_LAUNCH("add_bias_kernel");
}

void bf16_to_f32(const uint16_t* in, float* out, int64_t count) {
  if (count == 0) return;
  bf16_to_f32_kernel<<<grid_stride_blocks(count, kThreads), kThreads>>>(in, out, count);
  K5_CUDA_CHECK_LAUNCH("bf16_to_f32_kernel");
}

void unary(Context&, Unary function, const Tensor& x, Tensor& out) {
  check_same_shape(x, out, "unary op");
  const float* in = contiguous_f32(x, "unary op input");
  if (out.dtype() == DType::BF16) {
    K5_CHECK(out.is_contiguous(), "unary op output: expected a contiguous tensor, got ", out.describe());
    return launch_unary(function, in, x.numel(), out.data<uint16_t>(), x.numel(), 1, x.numel());
  }
  launch_unary(function, in, x.numel(), contiguous_f32(out, "unary op output"), x.numel(), 1, x.numel());
}

void swiglu(Context&, const Tensor& gate, const Tensor& up, Tensor& out) {
  check_same_shape(gate, up, "swiglu");
  check_same_shape(gate, out, "swiglu");
  const float* g = contiguous_f32(gate, "swiglu gate");
  const float* u = contiguous_f32(up, "swiglu up");
  float* result = contiguous_f32(out, "swiglu output");
  const int64_t count = gate.numel();
  if (count == 0) return;
  swiglu_kernel<<<grid_stride_blocks(count, kThreads), kThreads>>>(g, u, result, count);
  K5_CUDA_CHECK_LAUNCH("swiglu_kernel");
}

void binary(Context&, Binary function, const Tensor& a, const Tensor& b, Tensor& out) {
  const auto [left, right, result, count, period] = ops::binary_operands(a, b, out);
  if (count == 0) return;
  if (function == Binary::add)
    binary_kernel<Binary::add><<<grid_stride_blocks(count, kThreads), kThreads>>>(left, right, period, result, count);
  else
    binary_kernel<Binary::mul><<<grid_stride_blocks(count, kThreads), kThreads>>>(left, right, period, result, count);
  K5_CUDA_CHECK_LAUNCH("binary_kernel");
}

void scale(Context&, const Tensor& x, float factor, Tensor& out) {
  check_same_shape(x, out, "scale");
  const float* in = contiguous_f32(x, "scale input");
  float* result = contiguous_f32(out, "scale output");
  if (x.numel() == 0) return;
  scale_kernel<<<grid_stride_blocks(x.numel(), kThreads), kThreads>>>(in, factor, result, x.numel());
  K5_CUDA_CHECK_LAUNCH("scale_kernel");
}

void softmax(Context&, const Tensor& x, Tensor& out) {
  check_same_shape(x, out, "softmax");
  const cpu::Rows in = cpu::rows_of(x, "softmax input"), result = cpu::rows_of(out, "softmax output");
  if (in.count == 0 || in.width == 0) return;
  K5_CHECK(in.count < (int64_t(1) << 31), "softmax: ", in.count, " rows is more than one launch takes");
  softmax_kernel<<<unsigned(in.count), kThreads>>>(in.data, in.stride, result.data, result.stride, in.width);
  K5_CUDA_CHECK_LAUNCH("softmax_kernel");
}

}  // namespace k5::cuda
