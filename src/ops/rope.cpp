#include "ops/rope.h"

#include "backends/cpu/kernels.h"
#include "backends/cuda/kernels.h"
#include "ops/dispatch.h"

namespace k5::ops {

void rope_interleaved(Context& ctx, Tensor& x, const Tensor& cos, const Tensor& sin) {
  if constexpr (kCudaBuild)
    if (on_cuda("rope_interleaved", x, cos, sin)) return cuda::rope(ctx, x, cos, sin, true);
  device_of("rope_interleaved", x, cos, sin);
  cpu::rope(ctx, x, cos, sin, true);
}

void rope_half_split(Context& ctx, Tensor& x, const Tensor& cos, const Tensor& sin) {
  if constexpr (kCudaBuild)
    if (on_cuda("rope_half_split", x, cos, sin)) return cuda::rope(ctx, x, cos, sin, false);
  device_of("rope_half_split", x, cos, sin);
  cpu::rope(ctx, x, cos, sin, false);
}

void rms_norm_rope_interleaved(Context& ctx, Tensor& x, const HeadRmsNorm& norm, const Tensor& cos, const Tensor& sin) {
  const char* op = "rms_norm_rope_interleaved";
  if (norm.weight) common_device(op, x, *norm.weight);
  if constexpr (kCudaBuild)
    if (on_cuda(op, x, cos, sin)) return cuda::rope(ctx, x, cos, sin, true, &norm);
  device_of(op, x, cos, sin);
  cpu::rope(ctx, x, cos, sin, true, &norm);
}

}  // namespace k5::ops
