// conv3d on the GPU (the CUDA side of src/ops/conv.h) as implicit GEMM, the same computation as the CPU's
// im2col path (src/backends/cpu/conv.cpp):
//
//   out[O, P] (+)= weight[O, R] * columns[R, P],   R = C*KT*KH*KW,  P = T'*H'*W' (flattened output positions)
//
// A chunk of consecutive output positions [p0, p0 + n) is one column block of out, so the column buffer only
// ever holds `n` positions' patches (bounded by column_budget_bytes, 256 MB by default). Padding (zeros or
// replicate) is resolved while gathering; no padded copy of the input is made. The bias (and the residual
// when accumulating) is written into out first and every GEMM adds to it (beta = 1). GEMMs run through
// cuBLASLt: in Precision::fp32 true float32 (CUBLAS_COMPUTE_32F), like the CPU path; in Precision::bf16 on the
// tensor cores with TF32 products (the official code runs the HunyuanVideo VAE in float16, whose mantissa TF32
// shares), ~8x faster. 1x1x1 stride-1 unpadded convs read x as the column matrix directly. The gather kernels are in
// conv.cuh.
#include <cuda_runtime_api.h>

#include <algorithm>

#include "backends/cuda/check.h"
#include "backends/cuda/conv.cuh"
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/gemm.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"

namespace k5::cuda {

namespace {

// Column-major out[m, n] += columns[m, k] * weight[k, n], all float32, no transposes. In row-major terms
// (how k5 stores them): out is [n = O, m = positions] rows `ldd` apart, columns is [k = R, m] rows `ldc`
// apart, weight is [n, k] contiguous. A chunk of out starts at an arbitrary position (4-byte alignment only).
void gemm_accumulate(const float* columns, int64_t ldc, const float* weight, float* out, int64_t ldd, int64_t m,
                     int64_t n, int64_t k, bool tf32) {
  const Gemm gemm{.input_type = CUDA_R_32F,
                  .a = columns,
                  .a_transposed = false,
                  .lda = ldc,
                  .b = weight,
                  .ldb = k,
                  .d = out,
                  .ldd = ldd,
                  .m = m,
                  .n = n,
                  .k = k,
                  .accumulate = true,
                  .tf32 = tf32};
  K5_CHECK(try_gemm(gemm), "conv3d: cuBLASLt has no float32 algorithm for ", m, "x", n, "x", k, " (leading dimensions ",
           ldc, ", ", k, ", ", ldd, ")");
}

void check_on_gpu(const Tensor& t, const char* what) {
  K5_CHECK(t.device() == Device::CUDA && t.dtype() == DType::F32 && t.is_contiguous(), "conv3d: ", what, " ",
           t.describe(), " must be a contiguous F32 tensor on the GPU");
}

}  // namespace

void conv3d(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const ops::ConvGeometry& geometry,
            Tensor& out, bool accumulate, int64_t column_budget_bytes) {
  // Shapes were validated by the op layer (src/ops/conv.cpp); these guard direct callers (the tests).
  check_on_gpu(x, "input");
  check_on_gpu(weight, "weight");
  check_on_gpu(out, "output");
  if (bias) check_on_gpu(*bias, "bias");
  K5_CHECK(out.shape() == ops::conv3d_output_shape(x.shape(), weight.shape(), geometry), "conv3d: output ",
           out.describe(), " does not match input ", x.describe(), " and weight ", weight.describe());
  K5_CHECK(out.raw() != x.raw(), "conv3d: output must not alias the input");

  const int64_t out_channels = weight.size(0), plane = out.size(1) * out.size(2) * out.size(3);
  const int64_t reduction = weight.size(1) * weight.size(2) * weight.size(3) * weight.size(4);
  const float* input = x.data<float>();
  const float* kernel = weight.data<float>();
  float* output = out.data<float>();
  if (out_channels * plane == 0) return;
  const bool tf32 = ctx.precision() == Precision::bf16;

  // x: [C, T, H, W] -> out: [O, T', H', W'], starting from the bias (+ residual).
  if (bias || !accumulate) {
    prefill_kernel<<<grid_stride_blocks(out_channels * plane, kConvThreads), kConvThreads>>>(
        bias ? bias->data<float>() : nullptr, accumulate, output, out_channels, plane);
    K5_CUDA_CHECK_LAUNCH("prefill_kernel");
  }
  if (reduction == 0) return;

  const bool pointwise = weight.size(2) == 1 && weight.size(3) == 1 && weight.size(4) == 1 &&
                         geometry.stride == std::array<int, 3>{1, 1, 1} &&
                         geometry.pad_before == std::array<int, 3>{0, 0, 0} &&
                         geometry.pad_after == std::array<int, 3>{0, 0, 0};
  if (pointwise) {
    // x [C, P] is already the column matrix.
    gemm_accumulate(input, plane, kernel, output, plane, plane, out_channels, reduction, tf32);
    return;
  }

  K5_CHECK(plane < (int64_t(1) << 31) && reduction < (int64_t(1) << 31), "conv3d: ", out.describe(), " from ",
           weight.describe(), " exceeds the 32-bit position and patch indices of the gather");
  const ConvShape shape = conv_shape(x.shape(), weight.shape(), out.shape(), geometry);
  const int64_t budget_floats = std::max<int64_t>(column_budget_bytes, 0) / int64_t(sizeof(float));
  const int64_t chunk = std::clamp<int64_t>(budget_floats / reduction, 1, plane);
  const ScratchBuffer columns(size_t(reduction * chunk) * sizeof(float));
  for (int64_t p0 = 0; p0 < plane; p0 += chunk) {
    const int64_t n = std::min(chunk, plane - p0);
    // The next gather overwrites the buffer only after this GEMM has read it: both are on the default stream.
    const dim3 grid{unsigned((n + kConvThreads - 1) / kConvThreads),
                    unsigned(std::min<int64_t>(reduction, kIm2colRowBlocks))};
    im2col_kernel<<<grid, kConvThreads>>>(input, shape, p0, int(n), int(reduction), columns.as<float>());
    K5_CUDA_CHECK_LAUNCH("im2col_kernel");
    gemm_accumulate(columns.as<float>(), n, kernel, output + p0, plane, n, out_channels, reduction, tf32);
  }
}

}  // namespace k5::cuda
