// Nearest upsampling and strided placement on the GPU (the CUDA side of src/ops/conv.h): pure data movement,
// one thread per written element (grid-stride), consecutive threads on consecutive output columns.

#include "backends/cuda/check.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"

namespace k5::cuda {

namespace {

constexpr int kThreads = 256;

struct Extent {
  int64_t frames, height, width;
};

// out[c, t, h, w] = x[c, source_t(t), h / factor_h, w / factor_w] (F.interpolate mode="nearest"). With
// first_frame_alone, output frame 0 comes from frame 0 and frames 1.. from 1 + (t - 1) / factor_t.
__global__ void upsample_nearest_kernel(const float* x, Extent in, int factor_t, int factor_h, int factor_w,
                                        bool first_frame_alone, Extent o, int64_t total, float* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t w = i % o.width, h = i / o.width % o.height, t = i / (o.width * o.height) % o.frames;
    const int64_t c = i / (o.width * o.height * o.frames);
    const int64_t source_t = first_frame_alone ? (t == 0 ? 0 : 1 + (t - 1) / factor_t) : t / factor_t;
    out[i] = x[((c * in.frames + source_t) * in.height + h / factor_h) * in.width + w / factor_w];
  }
}

// out[c, offset_t + step_t*t, offset_h + step_h*h, offset_w + step_w*w] = x[c, t, h, w]; other elements of out
// are left as they are.
__global__ void place_strided_kernel(const float* x, Extent in, Extent offset, Extent step, Extent o, int64_t total,
                                     float* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t w = i % in.width, h = i / in.width % in.height, t = i / (in.width * in.height) % in.frames;
    const int64_t c = i / (in.width * in.height * in.frames);
    const int64_t target_t = offset.frames + step.frames * t, target_h = offset.height + step.height * h;
    const int64_t target_w = offset.width + step.width * w;
    out[((c * o.frames + target_t) * o.height + target_h) * o.width + target_w] = x[i];
  }
}

void check_operand(const Tensor& t, const char* op, const char* what) {
  K5_CHECK(t.device() == Device::CUDA && t.dtype() == DType::F32 && t.is_contiguous() && t.dim() == 4, op, ": ", what,
           " ", t.describe(), " must be a contiguous F32 [C, T, H, W] tensor on the GPU");
}

Extent extent_of(const Tensor& t) { return {t.size(1), t.size(2), t.size(3)}; }

}  // namespace

void upsample_nearest(Context&, const Tensor& x, int factor_t, int factor_h, int factor_w, bool first_frame_alone,
                      Tensor& out) {
  check_operand(x, "upsample_nearest", "input");
  check_operand(out, "upsample_nearest", "output");
  K5_CHECK(out.shape() == ops::upsample_nearest_shape(x.shape(), factor_t, factor_h, factor_w, first_frame_alone),
           "upsample_nearest: output ", out.describe(), " does not match input ", x.describe());
  const int64_t total = out.numel();
  if (total == 0) return;
  upsample_nearest_kernel<<<grid_stride_blocks(total, kThreads), kThreads>>>(x.data<float>(), extent_of(x), factor_t,
                                                                             factor_h, factor_w, first_frame_alone,
                                                                             extent_of(out), total, out.data<float>());
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
  place_strided_kernel<<<grid_stride_blocks(total, kThreads), kThreads>>>(
      x.data<float>(), extent_of(x), {offset[0], offset[1], offset[2]}, {step[0], step[1], step[2]}, extent_of(out),
      total, out.data<float>());
  K5_CUDA_CHECK_LAUNCH("place_strided_kernel");
}

}  // namespace k5::cuda
