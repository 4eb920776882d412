#include "ops/linear.h"

#include "backends/cpu/kernels.h"
#include "backends/cuda/kernels.h"
#include "ops/dispatch.h"

namespace k5::ops {

void linear(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, Tensor& out, Activation activation) {
  if constexpr (kCudaBuild)
    if (on_cuda("linear", x, weight, out)) return cuda::linear(ctx, x, weight, bias, out, activation);
  device_of("linear", x, weight, out);
  cpu::linear(ctx, x, weight, bias, out, activation);
}

Tensor linear(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, Activation activation) {
  K5_CHECK(x.dim() >= 1 && weight.dim() == 2, "linear: input ", x.describe(), " weight ", weight.describe());
  Shape shape = x.shape();
  shape.back() = weight.size(0);
  Tensor out = ctx.workspace(x.device()).tensor(DType::F32, shape);
  linear(ctx, x, weight, bias, out, activation);
  return out;
}

void matmul(Context& ctx, const Tensor& a, const Tensor& b, Tensor& out, bool accumulate) {
  if constexpr (kCudaBuild)
    if (on_cuda("matmul", a, b, out)) return cuda::matmul(ctx, a, b, out, accumulate);
  device_of("matmul", a, b, out);
  cpu::matmul(ctx, a, b, out, accumulate);
}

}  // namespace k5::ops
