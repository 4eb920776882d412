// Rotary position embeddings on the GPU (the CUDA side of src/ops/rope.h), in place, one thread per rotated
// pair. Same formulas in the same order as cpu::rope (src/backends/cpu/elementwise.cpp); the products and
// sums are written with the _rn intrinsics so nvcc cannot fuse them into FMAs, which keeps each value a
// plain float32 evaluation of that formula. (The CPU build, GCC with -mfma and its default -ffp-contract=fast,
// does contract cpu::rope into FMAs, so the two agree to a rounding or so, not bit for bit.)

#include "backends/cpu/rows.h"
#include "backends/cuda/check.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"

namespace k5::cuda {

namespace {

constexpr int kThreads = 256;

// x: [tokens, heads, 2 * half] (token_stride, head_stride, last dim contiguous); cos, sin: [tokens, half]
// with row strides.
template <bool kInterleaved>
__global__ void rope_kernel(float* x, int64_t token_stride, int64_t head_stride, const float* cos, int64_t cos_stride,
                            const float* sin, int64_t sin_stride, int64_t heads, int64_t half, int64_t pairs) {
  for (int64_t index = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; index < pairs;
       index += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = index % half, head = index / half % heads, token = index / (half * heads);
    float* v = x + token * token_stride + head * head_stride;
    const float c = cos[token * cos_stride + i], s = sin[token * sin_stride + i];
    if constexpr (kInterleaved) {
      const float a = v[2 * i], b = v[2 * i + 1];
      v[2 * i] = __fsub_rn(__fmul_rn(c, a), __fmul_rn(s, b));
      v[2 * i + 1] = __fadd_rn(__fmul_rn(s, a), __fmul_rn(c, b));
    } else {
      const float a = v[i], b = v[i + half];
      v[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
      v[i + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
    }
  }
}

}  // namespace

void rope(Context&, Tensor& x, const Tensor& cos, const Tensor& sin, bool interleaved) {
  K5_CHECK(x.dtype() == DType::F32 && x.dim() == 3 && x.stride(2) == 1,
           "rope: expected F32 [L, H, D] with a contiguous last dim, got ", x.describe());
  const int64_t tokens = x.size(0), heads = x.size(1), dim = x.size(2), half = dim / 2;
  K5_CHECK(dim % 2 == 0, "rope: head dim ", dim, " is odd");
  const cpu::Rows cos_rows = cpu::rows_of(cos, "rope cos"), sin_rows = cpu::rows_of(sin, "rope sin");
  K5_CHECK(cos_rows.count == tokens && cos_rows.width == half && sin_rows.count == tokens && sin_rows.width == half,
           "rope: cos/sin must be [", tokens, ", ", half, "], got ", cos.describe(), " and ", sin.describe());
  K5_CHECK(x.device() == Device::CUDA && cos.device() == Device::CUDA && sin.device() == Device::CUDA, "rope: x ",
           x.describe(), ", cos ", cos.describe(), " and sin ", sin.describe(), " must all be on the GPU");
  const int64_t pairs = tokens * heads * half;
  if (pairs == 0) return;
  const unsigned blocks = grid_stride_blocks(pairs, kThreads);
  if (interleaved)
    rope_kernel<true><<<blocks, kThreads>>>(x.data<float>(), x.stride(0), x.stride(1), cos_rows.data, cos_rows.stride,
                                            sin_rows.data, sin_rows.stride, heads, half, pairs);
  else
    rope_kernel<false><<<blocks, kThreads>>>(x.data<float>(), x.stride(0), x.stride(1), cos_rows.data, cos_rows.stride,
                                             sin_rows.data, sin_rows.stride, heads, half, pairs);
  K5_CUDA_CHECK_LAUNCH("rope_kernel");
}

}  // namespace k5::cuda
