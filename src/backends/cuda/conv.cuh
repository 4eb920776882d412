// The convolution's gather kernels (conv.cu), in a header so that the CPU test suite runs this same device code under
// the warp emulator (tests/backends/cuda_emulated/): im2col of a chunk of output positions, padding resolved while
// gathering, and the prefill of the output with the bias (and the residual) that the GEMMs then add to.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "ops/conv.h"

namespace k5::cuda {

constexpr int kConvThreads = 256;
constexpr int64_t kIm2colRowBlocks = 64;  // grid.y of the gather: patch rows are shared out over this many

// Everything the gather needs to map (patch row r, output position p) to an input element.
struct ConvShape {
  int64_t channels, frames, height, width;  // input
  int64_t kt, kh, kw;                       // kernel
  int64_t out_height, out_width;            // output (frames are implied by the position)
  int64_t stride_t, stride_h, stride_w;
  int64_t pad_t, pad_h, pad_w;  // before; the padding after only shapes the output
  bool replicate;
};

// The gather's view of conv3d(x [C, T, H, W], weight [O, C, KT, KH, KW]) -> out [O, T', H', W'].
inline ConvShape conv_shape(const Shape& x, const Shape& weight, const Shape& out, const ops::ConvGeometry& geometry) {
  return {.channels = x[0],
          .frames = x[1],
          .height = x[2],
          .width = x[3],
          .kt = weight[2],
          .kh = weight[3],
          .kw = weight[4],
          .out_height = out[2],
          .out_width = out[3],
          .stride_t = geometry.stride[0],
          .stride_h = geometry.stride[1],
          .stride_w = geometry.stride[2],
          .pad_t = geometry.pad_before[0],
          .pad_h = geometry.pad_before[1],
          .pad_w = geometry.pad_before[2],
          .replicate = geometry.pad_mode == ops::PadMode::replicate};
}

// The input index for a padded coordinate, or -1 for a zero-padded position (replicate clamps).
__device__ inline int64_t source_index(int64_t padded, int64_t size, bool replicate) {
  if (padded >= 0 && padded < size) return padded;
  if (!replicate) return -1;
  return padded < 0 ? 0 : size - 1;
}

// columns[r, j] = x_padded[c, t*st + dt, h*sh + dh, w*sw + dw] with r = (c, dt, dh, dw) (the weight's
// [C, KT, KH, KW] order) and (t, h, w) output position p0 + j. columns: [R, n] row-major. A thread owns one
// position j (decoded once) and walks the patch rows r = blockIdx.y, blockIdx.y + gridDim.y, ...: within a
// warp the row is uniform, so writes are coalesced and reads nearly so (stride_w apart).
__global__ void im2col_kernel(const float* x, ConvShape s, int64_t p0, int n, int reduction, float* columns) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n) return;
  const int64_t p = p0 + j;
  const int64_t wo = p % s.out_width, ho = p / s.out_width % s.out_height, to = p / (s.out_width * s.out_height);
  const int64_t t0 = to * s.stride_t - s.pad_t, h0 = ho * s.stride_h - s.pad_h, w0 = wo * s.stride_w - s.pad_w;
  const int kw = int(s.kw), kh = int(s.kh), kt = int(s.kt);
  for (int r = blockIdx.y; r < reduction; r += gridDim.y) {
    const int dw = r % kw, dh = r / kw % kh, dt = r / (kw * kh) % kt, c = r / (kw * kh * kt);
    const int64_t ti = source_index(t0 + dt, s.frames, s.replicate);
    const int64_t hi = source_index(h0 + dh, s.height, s.replicate);
    const int64_t wi = source_index(w0 + dw, s.width, s.replicate);
    columns[int64_t(r) * n + j] =
        ti < 0 || hi < 0 || wi < 0 ? 0.0f : x[((c * s.frames + ti) * s.height + hi) * s.width + wi];
  }
}

// out[o, p] = (accumulate ? out[o, p] : 0) + (bias ? bias[o] : 0): what the GEMMs then add to.
__global__ void prefill_kernel(const float* bias, bool accumulate, float* out, int64_t out_channels, int64_t plane) {
  const int64_t total = out_channels * plane;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const float b = bias ? bias[i / plane] : 0.0f;
    out[i] = accumulate ? out[i] + b : b;
  }
}

}  // namespace k5::cuda
