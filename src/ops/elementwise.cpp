#include "ops/elementwise.h"

#include "backends/cpu/kernels.h"
#include "backends/cuda/kernels.h"
#include "ops/dispatch.h"

namespace k5::ops {

void silu(Context& ctx, const Tensor& x, Tensor& out) {
  if constexpr (kCudaBuild)
    if (on_cuda("silu", x, out)) return cuda::unary(ctx, cuda::Unary::silu, x, out);
  device_of("silu", x, out);
  cpu::unary(ctx, cpu::Unary::silu, x, out);
}

void gelu(Context& ctx, const Tensor& x, Tensor& out) {
  if constexpr (kCudaBuild)
    if (on_cuda("gelu", x, out)) return cuda::unary(ctx, cuda::Unary::gelu_erf, x, out);
  device_of("gelu", x, out);
  cpu::unary(ctx, cpu::Unary::gelu_erf, x, out);
}

void quick_gelu(Context& ctx, const Tensor& x, Tensor& out) {
  if constexpr (kCudaBuild)
    if (on_cuda("quick_gelu", x, out)) return cuda::unary(ctx, cuda::Unary::quick_gelu, x, out);
  device_of("quick_gelu", x, out);
  cpu::unary(ctx, cpu::Unary::quick_gelu, x, out);
}

void swiglu(Context& ctx, const Tensor& gate, const Tensor& up, Tensor& out) {
  if constexpr (kCudaBuild)
    if (on_cuda("swiglu", gate, up, out)) return cuda::swiglu(ctx, gate, up, out);
  device_of("swiglu", gate, up, out);
  cpu::swiglu(ctx, gate, up, out);
}

void add(Context& ctx, const Tensor& a, const Tensor& b, Tensor& out) {
  if constexpr (kCudaBuild)
    if (on_cuda("add", a, b, out)) return cuda::binary(ctx, cuda::Binary::add, a, b, out);
  device_of("add", a, b, out);
  cpu::binary(ctx, cpu::Binary::add, a, b, out);
}

void mul(Context& ctx, const Tensor& a, const Tensor& b, Tensor& out) {
  if constexpr (kCudaBuild)
    if (on_cuda("mul", a, b, out)) return cuda::binary(ctx, cuda::Binary::mul, a, b, out);
  device_of("mul", a, b, out);
  cpu::binary(ctx, cpu::Binary::mul, a, b, out);
}

void scale(Context& ctx, const Tensor& x, float factor, Tensor& out) {
  if constexpr (kCudaBuild)
    if (on_cuda("scale", x, out)) return cuda::scale(ctx, x, factor, out);
  device_of("scale", x, out);
  cpu::scale(ctx, x, factor, out);
}

void softmax(Context& ctx, const Tensor& x, Tensor& out) {
  if constexpr (kCudaBuild)
    if (on_cuda("softmax", x, out)) return cuda::softmax(ctx, x, out);
  device_of("softmax", x, out);
  cpu::softmax(ctx, x, out);
}

}  // namespace k5::ops
