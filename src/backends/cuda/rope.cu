// Rotary position embeddings on the GPU (the CUDA side of src/ops/rope.h), with the q/k RMSNorm optionally fused
// in; the kernel is in rope.cuh.
#include "backends/cpu/rows.h"
#include "backends/cuda/check.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"
#include "backends/cuda/rope.cuh"
#include "ops/operands.h"

namespace k5::cuda {

void rope(Context&, Tensor& x, const Tensor& cos, const Tensor& sin, bool interleaved, const ops::HeadRmsNorm* norm) {
  const auto [tokens, heads, dim, half, cos_rows, sin_rows, weight] = ops::rope_operands(x, cos, sin, norm);
  K5_CHECK(x.device() == Device::CUDA && cos.device() == Device::CUDA && sin.device() == Device::CUDA, "rope: x ",
           x.describe(), ", cos ", cos.describe(), " and sin ", sin.describe(), " must all be on the GPU");
  const RopeRows rows{.x = x.data<float>(),
                      .token_stride = x.stride(0),
                      .head_stride = x.stride(1),
                      .cos = cos_rows.data,
                      .cos_stride = cos_rows.stride,
                      .sin = sin_rows.data,
                      .sin_stride = sin_rows.stride,
                      .tokens = tokens,
                      .heads = heads,
                      .half = half,
                      .norm_weight = weight.data,
                      .norm_weight_stride = weight.stride,
                      .norm_eps = norm ? norm->eps : 0.0f};
  if (norm && norm->weight)
    K5_CHECK(norm->weight->device() == Device::CUDA, "rope: norm weight ", norm->weight->describe(),
             " is on the host, x on the GPU");
  if (tokens * heads == 0 || half == 0) return;
  const unsigned blocks = grid_stride_blocks(tokens * heads, kRopeWarpsPerBlock);
  const int threads = 32 * kRopeWarpsPerBlock;
  if (interleaved && norm)
    rope_kernel<true, true><<<blocks, threads>>>(rows);
  else if (interleaved)
    rope_kernel<true, false><<<blocks, threads>>>(rows);
  else if (norm)
    rope_kernel<false, true><<<blocks, threads>>>(rows);
  else
    rope_kernel<false, false><<<blocks, threads>>>(rows);
  K5_CUDA_CHECK_LAUNCH("rope_kernel");
}

}  // namespace k5::cuda
