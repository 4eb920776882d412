// Nearest upsampling and strided placement on the GPU (the CUDA side of src/ops/conv.h): operand checks and launches;
// the kernels are in upsample.cuh.
#include "backends/cuda/check.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"
#include "backends/cuda/upsample.cuh"

namespace k5::cuda {

namespace {

void check_operand(const Tensor& t, const char* op, const char* what) {
  K5_CHECK(t.device() == Device::CUDA && t.dtype() == DType::F32 && t.is_contiguous() && t.dim() == 4, op, ": ", what,
           " ", t.describe(), " must be a contiguous F32 [C, T, H, W] tensor on the GPU");
}

VolumeExtent extent_of(const Tensor& t) { return {t.size(1), t.size(2), t.size(3)}; }

}  // namespace

void upsample_nearest(Context&, const Tensor& x, int factor_t, int factor_h, int factor_w, bool first_frame_alone,
                      Tensor& out) {
  check_operand(x, "upsample_nearest", "input");
  check_operand(out, "upsample_nearest", "output");
  K5_CHECK(out.shape() == ops::upsample_nearest_shape(x.shape(), factor_t, factor_h, factor_w, first_frame_alone),
           "upsample_nearest: output ", out.describe(), " does not match input ", x.describe());
  const int64_t total = out.numel();
  if (total == 0) return;
  upsample_nearest_kernel<<<grid_stride_blocks(total, kUpsampleThreads), kUpsampleThreads>>>(
      x.data<float>(), extent_of(x), factor_t, factor_h, factor_w, first_frame_alone, extent_of(out), total,
      out.data<float>());
  K5_CUDA_CHECK_LAUNCH("upsample_nearest_kernel");
}

void place_strided(Context&, const Tensor& x, std::array<int64_t, 3> offset, std::array<int64_t, 3> step, Tensor& out) {
  check_operand(x, "place_strided", "input");
  check_operand(out, "place_strided", "output");
  K5_CHECK(x.size(0) == out.size(0), "place_strided: ", x.describe(), " into ", out.describe());
  for (int axis = 0; axis < 3; ++axis)
    K5_CHECK(step[axis] >= 1 && offset[axis] >= 0 &&
                 (x.size(axis + 1) == 0 || offset[axis] + step[axis] * (x.size(axis + 1) - 1) < out.size(axis + 1)),
             "place_strided: ", x.describe(), " does not fit ", out.describe(), " on axis ", axis + 1);
  const int64_t total = x.numel();
  if (total == 0) return;
  place_strided_kernel<<<grid_stride_blocks(total, kUpsampleThreads), kUpsampleThreads>>>(
      x.data<float>(), extent_of(x), {offset[0], offset[1], offset[2]}, {step[0], step[1], step[2]}, extent_of(out),
      total, out.data<float>());
  K5_CUDA_CHECK_LAUNCH("place_strided_kernel");
}

}  // namespace k5::cuda
