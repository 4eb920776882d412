// Rotary position embeddings on the GPU (the CUDA side of src/ops/rope.h), with the q/k RMSNorm optionally fused
// in; the kernel is in rope.cuh.
#include "backends/cpu/rows.h"
#include "backends/cuda/check.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"
#include "backends/cuda/rope.cuh"

namespace k5::cuda {

void rope(Context&, Tensor& x, const Tensor& cos, const Tensor& sin, bool interleaved, const ops::HeadRmsNorm* norm) {
  K5_CHECK(x.dtype() == DType::F32 && x.dim() == 3 && x.stride(2) == 1,
           "rope: expected F32 [L, H, D] with a contiguous last dim, got ", x.describe());
  const int64_t tokens = x.size(0), heads = x.size(1), dim = x.size(2), half = dim / 2;
  K5_CHECK(dim % 2 == 0, "rope: head dim ", dim, " is odd");
  const cpu::Rows cos_rows = cpu::rows_of(cos, "rope cos"), sin_rows = cpu::rows_of(sin, "rope sin");
  K5_CHECK(cos_rows.count == tokens && cos_rows.width == half && sin_rows.count == tokens && sin_rows.width == half,
           "rope: cos/sin must be [", tokens, ", ", half, "], got ", cos.describe(), " and ", sin.describe());
  K5_CHECK(x.device() == Device::CUDA && cos.device() == Device::CUDA && sin.device() == Device::CUDA, "rope: x ",
           x.describe(), ", cos ", cos.describe(), " and sin ", sin.describe(), " must all be on the GPU");
  RopeRows rows{.x = x.data<float>(),
                .token_stride = x.stride(0),
                .head_stride = x.stride(1),
                .cos = cos_rows.data,
                .cos_stride = cos_rows.stride,
                .sin = sin_rows.data,
                .sin_stride = sin_rows.stride,
                .tokens = tokens,
                .heads = heads,
                .half = half,
                .norm_weight = nullptr,
                .norm_weight_stride = 1,
                .norm_eps = norm ? norm->eps : 0.0f};
  if (norm && norm->weight) {
    K5_CHECK(norm->weight->device() == Device::CUDA, "rope: norm weight ", norm->weight->describe(),
             " is on the host, x on the GPU");
    const cpu::Vector weight = cpu::vector_of(*norm->weight, dim, "rope norm weight");
    rows.norm_weight = weight.data;
    rows.norm_weight_stride = weight.stride;
  }
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
