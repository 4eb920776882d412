// Sums and maxima across one thread block (any blockDim.x that is a multiple of 32, up to 1024); every
// thread gets the result. Used by the row kernels: one block per row.
#pragma once

#include <cmath>

#include "backends/cuda/static_shared.cuh"

namespace k5::cuda {

template <typename T>
struct SumOp {
  __device__ T operator()(T a, T b) const { return a + b; }
  static constexpr T identity = T(0);
};
struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
  static constexpr float identity = -INFINITY;
};

template <typename T, typename Op>
__device__ T warp_reduce(T value, Op op) {
  for (int offset = 16; offset > 0; offset /= 2) value = op(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}

// `partial`: 32 values of shared memory for the warps' results.
template <typename T, typename Op>
__device__ T block_reduce(T value, Op op, T* partial) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  value = warp_reduce(value, op);
  __syncthreads();  // the previous call's readers of partial[0] are done
  if (lane == 0) partial[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = Op::identity;
    if (lane < warps) value = partial[lane];
    value = warp_reduce(value, op);
    if (lane == 0) partial[0] = value;
  }
  __syncthreads();
  return partial[0];
}

template <typename T, typename Op>
__device__ T block_reduce(T value, Op op) {
  K5_STATIC_SHARED T partial[32];
  return block_reduce(value, op, partial);
}

__device__ inline float block_sum(float value) { return block_reduce(value, SumOp<float>{}); }
__device__ inline double block_sum(double value) { return block_reduce(value, SumOp<double>{}); }
__device__ inline float block_max(float value) { return block_reduce(value, MaxOp{}); }

}  // namespace k5::cuda
