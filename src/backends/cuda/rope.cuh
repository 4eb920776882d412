// The rotary-embedding kernel of rope.cu, in a header so that the CPU test suite runs this same device code under
// the warp emulator (tests/backends/cuda_emulated/). One warp per (token, head) row of D values: with the q/k
// RMSNorm fused in, the warp sums the row's squares, then each lane normalises and rotates its pairs, so x goes
// through memory once (the rotation's second read of a row comes from cache).
//
// Same formulas in the same order as cpu::rope (src/backends/cpu/elementwise.cpp); the products and sums are
// written with the _rn intrinsics so nvcc cannot fuse them into FMAs, which keeps each value a plain float32
// evaluation of that formula. (The CPU build, GCC with -mfma and its default -ffp-contract=fast, does contract
// cpu::rope into FMAs, and sums the squares in double, so the two agree to a rounding or so, not bit for bit.)
#pragma once

#include <cmath>
#include <cstdint>

#include "backends/cuda/block_reduce.cuh"

namespace k5::cuda {

constexpr int kRopeWarpsPerBlock = 8;

// x: [tokens, heads, 2 * half] (token_stride, head_stride, last dim contiguous); cos, sin: [tokens, half] with row
// strides; norm_weight [2 * half] with an element stride, or null.
struct RopeRows {
  float* x;
  int64_t token_stride, head_stride;
  const float* cos;
  int64_t cos_stride;
  const float* sin;
  int64_t sin_stride;
  int64_t tokens, heads, half;
  const float* norm_weight;
  int64_t norm_weight_stride;
  float norm_eps;
};

// Grid-stride over rows, kRopeWarpsPerBlock rows per block at a time; every lane of a warp stays in the loop
// together (the row count test is per warp), as the shuffle needs.
template <bool kInterleaved, bool kNormalise>
__global__ void rope_kernel(RopeRows p) {
  const int lane = int(threadIdx.x % 32), warp = int(threadIdx.x / 32);
  const int64_t rows = p.tokens * p.heads, dim = 2 * p.half;
  for (int64_t row = int64_t(blockIdx.x) * kRopeWarpsPerBlock + warp; row < rows;
       row += int64_t(gridDim.x) * kRopeWarpsPerBlock) {
    const int64_t token = row / p.heads, head = row % p.heads;
    float* v = p.x + token * p.token_stride + head * p.head_stride;
    const float* c = p.cos + token * p.cos_stride;
    const float* s = p.sin + token * p.sin_stride;
    float inverse = 1.0f;
    if constexpr (kNormalise) {
      float squares = 0.0f;
      for (int64_t i = lane; i < dim; i += 32) squares += v[i] * v[i];
      inverse = 1.0f / sqrtf(warp_reduce(squares, SumOp<float>{}) / float(dim) + p.norm_eps);
    }
    // The normalised value of element i, as the rms_norm kernel computes it (norm.cu).
    auto value = [&](int64_t i) {
      if constexpr (!kNormalise) return v[i];
      return p.norm_weight ? v[i] * inverse * p.norm_weight[i * p.norm_weight_stride] : v[i] * inverse;
    };
    for (int64_t i = lane; i < p.half; i += 32) {
      const int64_t first = kInterleaved ? 2 * i : i, second = kInterleaved ? 2 * i + 1 : i + p.half;
      const float a = value(first), b = value(second);
      v[first] = __fsub_rn(__fmul_rn(c[i], a), __fmul_rn(s[i], b));
      v[second] = __fadd_rn(__fmul_rn(s[i], a), __fmul_rn(c[i], b));
    }
  }
}

}  // namespace k5::cuda
