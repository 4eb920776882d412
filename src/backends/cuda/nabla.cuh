// NABLA's block selection on the GPU (the kernel of nabla.cu), in a header so that the CPU test suite runs this
// same device code under the warp emulator (tests/backends/cuda_emulated/). One block per (head, query block) row,
// in the float32 arithmetic of the CPU op (src/backends/cpu/nabla.cpp), step for step, so both keep the same blocks:
// each score is a sequential chain of FMAs over D, the exponentials are taken in double and rounded to float, the
// row sum and the running sum are sequential (one thread), and the stable ascending sort is a bitonic sort on
// (p, index). (The one step that is not the same arithmetic: CUDA's double exp and glibc's may differ in the last
// bit, which changes the float only when it lies on a rounding boundary: once in hundreds of millions of values.)
#pragma once

#include <cmath>
#include <cstdint>

#include "backends/cuda/block_reduce.cuh"

namespace k5::cuda {

constexpr int kNablaSelectThreads = 256;

struct NablaSelection {
  const float* q_pool;  // [heads, n, dim]
  const float* k_pool;  // [heads, n, dim]
  const uint8_t* sta;   // [n, n]
  uint8_t* block_mask;  // [heads, n, n]
  unsigned long long* kept;
  int64_t blocks;  // n
  int dim;
  int padded;  // n rounded up to a power of two: the sort's length
  float inverse_sqrt_d, threshold;
};

// Dynamic shared memory: p and the key block index for each sorted slot, 32 floats for the reductions, then the row
// sum (as a float) and the first kept slot (as an int).
inline size_t nabla_select_shared_bytes(int padded) { return size_t(padded) * 8 + 34 * sizeof(float); }

// Any block size up to kMaxThreads that is a multiple of 32 (a template, as the header is compiled in more than
// one place).
template <int kMaxThreads>
__global__ void __launch_bounds__(kMaxThreads) nabla_select_kernel(NablaSelection s) {
  extern __shared__ unsigned char shared_memory[];
  float* probability = reinterpret_cast<float*>(shared_memory);
  int* index = reinterpret_cast<int*>(probability + s.padded);
  float* scratch = reinterpret_cast<float*>(index + s.padded);  // [32] reductions, [32] the row sum
  int* first_kept = reinterpret_cast<int*>(scratch + 33);
  const int thread = int(threadIdx.x), threads = int(blockDim.x);
  const int64_t row = blockIdx.x, n = s.blocks;
  const int64_t head = row / n, query_block = row % n;
  const float* query = s.q_pool + row * s.dim;
  const float* keys = s.k_pool + head * n * s.dim;

  float local_max = -INFINITY;
  for (int kb = thread; kb < s.padded; kb += threads) {
    float score = INFINITY;  // padding sorts last
    if (kb < n) {
      const float* key = keys + kb * int64_t(s.dim);
      float dot = 0.0f;
      for (int c = 0; c < s.dim; ++c) dot = fmaf(query[c], key[c], dot);
      score = dot * s.inverse_sqrt_d;
      local_max = fmaxf(local_max, score);
    }
    probability[kb] = score;
    index[kb] = kb;
  }
  const float maximum = block_reduce(local_max, MaxOp{}, scratch);
  for (int kb = thread; kb < n; kb += threads) probability[kb] = float(exp(double(probability[kb] - maximum)));
  __syncthreads();
  if (thread == 0) {
    float sum = 0.0f;
    for (int kb = 0; kb < n; ++kb) sum += probability[kb];
    scratch[32] = sum;
  }
  __syncthreads();
  const float sum = scratch[32];
  for (int kb = thread; kb < n; kb += threads) probability[kb] /= sum;
  __syncthreads();

  // Bitonic sort, ascending by (p, index): the order of a stable sort by p.
  for (int size = 2; size <= s.padded; size *= 2)
    for (int stride = size / 2; stride > 0; stride /= 2) {
      for (int pair = thread; pair < s.padded / 2; pair += threads) {
        const int a = 2 * stride * (pair / stride) + pair % stride, b = a + stride;
        const bool b_first =
            probability[b] < probability[a] || (probability[b] == probability[a] && index[b] < index[a]);
        if (b_first == ((a & size) == 0)) {
          const float p = probability[a];
          probability[a] = probability[b];
          probability[b] = p;
          const int i = index[a];
          index[a] = index[b];
          index[b] = i;
        }
      }
      __syncthreads();
    }

  // The running mass only grows, so the kept blocks are the sorted ones from where it reaches 1 - P on.
  if (thread == 0) {
    float cumulative = 0.0f;
    int first = n;
    for (int i = 0; i < n && first == n; ++i) {
      cumulative += probability[i];
      if (cumulative >= s.threshold) first = i;
    }
    *first_kept = first;
  }
  __syncthreads();
  const int first = *first_kept;
  uint8_t* mask = s.block_mask + row * n;
  const uint8_t* sta = s.sta + query_block * n;
  float kept = 0.0f;                                  // exact: at most n <= 2^24 ones
  for (int i = thread; i < s.padded; i += threads) {  // every key block once (a NaN row may sort padding early)
    const int kb = index[i];
    if (kb >= n) continue;
    const bool keep = i >= first || sta[kb] != 0;
    mask[kb] = keep;
    kept += float(keep);
  }
  kept = block_reduce(kept, SumOp<float>{}, scratch);
  if (thread == 0) atomicAdd(s.kept, static_cast<unsigned long long>(kept));
}

}  // namespace k5::cuda
