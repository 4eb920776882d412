// The VAE's nearest-upsampling and strided-placement kernels (upsample.cu), in a header so that the CPU test suite runs
// this same device code under the warp emulator (tests/backends/cuda_emulated/): pure data movement, one thread per
// written element (grid-stride), consecutive threads on consecutive output columns.
#pragma once

#include <cstdint>

namespace k5::cuda {

constexpr int kUpsampleThreads = 256;

struct VolumeExtent {
  int64_t frames, height, width;
};

// out[c, t, h, w] = x[c, source_t(t), h / factor_h, w / factor_w] (F.interpolate mode="nearest"). With
// first_frame_alone, output frame 0 comes from frame 0 and frames 1.. from 1 + (t - 1) / factor_t.
__global__ void upsample_nearest_kernel(const float* x, VolumeExtent in, int factor_t, int factor_h, int factor_w,
                                        bool first_frame_alone, VolumeExtent o, int64_t total, float* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t w = i % o.width, h = i / o.width % o.height, t = i / (o.width * o.height) % o.frames;
    const int64_t c = i / (o.width * o.height * o.frames);
    const int64_t source_t = first_frame_alone ? (t == 0 ? 0 : 1 + (t - 1) / factor_t) : t / factor_t;
    out[i] = x[((c * in.frames + source_t) * in.height + h / factor_h) * in.width + w / factor_w];
  }
}

// out[c, offset_t + step_t*t, offset_h + step_h*h, offset_w + step_w*w] = x[c, t, h, w]; other elements of out
// are left as they are.
__global__ void place_strided_kernel(const float* x, VolumeExtent in, VolumeExtent offset, VolumeExtent step,
                                     VolumeExtent o, int64_t total, float* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t w = i % in.width, h = i / in.width % in.height, t = i / (in.width * in.height) % in.frames;
    const int64_t c = i / (in.width * in.height * in.frames);
    const int64_t target_t = offset.frames + step.frames * t, target_h = offset.height + step.height * h;
    const int64_t target_w = offset.width + step.width * w;
    out[((c * o.frames + target_t) * o.height + target_h) * o.width + target_w] = x[i];
  }
}

}  // namespace k5::cuda
