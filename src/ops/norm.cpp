#include "ops/norm.h"

#include "backends/cpu/kernels.h"
#include "backends/cuda/kernels.h"
#include "ops/dispatch.h"

namespace k5::ops {

void layer_norm(Context& ctx, const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& out) {
  if (weight) common_device("layer_norm", x, *weight);
  if (bias) common_device("layer_norm", x, *bias);
  if constexpr (kCudaBuild)
    if (on_cuda("layer_norm", x, out)) return cuda::layer_norm(ctx, x, weight, bias, eps, out);
  device_of("layer_norm", x, out);
  cpu::layer_norm(ctx, x, weight, bias, eps, out);
}

void rms_norm(Context& ctx, const Tensor& x, const Tensor* weight, float eps, Tensor& out) {
  if (weight) common_device("rms_norm", x, *weight);
  if constexpr (kCudaBuild)
    if (on_cuda("rms_norm", x, out)) return cuda::rms_norm(ctx, x, weight, eps, out);
  device_of("rms_norm", x, out);
  cpu::rms_norm(ctx, x, weight, eps, out);
}

void scale_shift_norm(Context& ctx, const Tensor& x, const Tensor& scale, const Tensor& shift, float eps, Tensor& out) {
  if constexpr (kCudaBuild)
    if (on_cuda("scale_shift_norm", x, scale, shift, out))
      return cuda::scale_shift_norm(ctx, x, scale, shift, eps, out);
  device_of("scale_shift_norm", x, scale, shift, out);
  cpu::scale_shift_norm(ctx, x, scale, shift, eps, out);
}

void gated_residual(Context& ctx, Tensor& x, const Tensor& h, const Tensor& gate) {
  if constexpr (kCudaBuild)
    if (on_cuda("gated_residual", x, h, gate)) return cuda::gated_residual(ctx, x, h, gate);
  device_of("gated_residual", x, h, gate);
  cpu::gated_residual(ctx, x, h, gate);
}

}  // namespace k5::ops
