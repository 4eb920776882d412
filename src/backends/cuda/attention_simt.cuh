// The reference attention kernel on CUDA cores (attention.cu describes it: flash_attention_64x64), in a header so that
// the CPU test suite runs this same device code under the warp emulator (tests/backends/cuda_emulated/).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "backends/cuda/attention_tiles.cuh"
#include "backends/cuda/bf16.cuh"

namespace k5::cuda {

constexpr int kQueryTile = 64;   // query rows per thread block
constexpr int kThreadGrid = 16;  // threads form a 16 x 16 grid over the 64 x 64 score tile
constexpr int kSimtThreads = kThreadGrid * kThreadGrid;
constexpr int kRowsPerThread = kQueryTile / kThreadGrid;          // 4
constexpr int kKeysPerThread = kKeyTile / kThreadGrid;            // 4
constexpr int kThreadsPerSoftmaxRow = kSimtThreads / kQueryTile;  // 4, neighbouring lanes of one warp
constexpr int kKeysPerSoftmaxThread = kKeyTile / kThreadsPerSoftmaxRow;
constexpr int kScoreStride = kKeyTile + 1;

static_assert(kThreadsPerSoftmaxRow == kLanesPerRow, "a softmax row's threads combine with max/sum_over_row_lanes");

// k5::f32_to_bf16 followed by the widening back to float.
__device__ inline float round_to_bf16(float value) { return __uint_as_float(uint32_t(to_bf16(value)) << 16); }

// tile[row][d] (rows `stride` floats apart) = source token `first + row` of `head`, zeros past `end`.
template <bool kBf16>
__device__ inline void load_tile(float* tile, int stride, const HeadView& source, int head, int64_t first, int64_t end,
                                 int rows, int dim) {
  load_head_tile(source, head, first, end, rows, dim, kSimtThreads,
                 [&](int row, int d, float value) { tile[row * stride + d] = kBf16 ? round_to_bf16(value) : value; });
}

// kDimSlots: output columns per thread (head dim up to 16 * kDimSlots). kBf16: Precision::bf16 roundings.
template <int kDimSlots, bool kBf16>
__global__ void __launch_bounds__(kSimtThreads) flash_attention_64x64(const AttentionParams p) {
  extern __shared__ unsigned char shared_memory[];
  float* shared = reinterpret_cast<float*>(shared_memory);
  const int dim = p.dim, dim_stride = dim + 1;
  float* q_tile = shared;                                  // [kQueryTile][dim + 1]
  float* kv_tile = q_tile + kQueryTile * dim_stride;       // [kKeyTile][dim + 1]: keys, then values
  float* scores = kv_tile + kKeyTile * dim_stride;         // [kQueryTile][kKeyTile + 1]: scores, then P
  float* row_factor = scores + kQueryTile * kScoreStride;  // [kQueryTile]: rescale of O, at the end 1 / sum

  const int tx = threadIdx.x % kThreadGrid, ty = threadIdx.x / kThreadGrid;
  const int head = blockIdx.y, kv_head = head / p.group;
  const int64_t q0 = int64_t(blockIdx.x) * kQueryTile;
  const int rows = int(min(int64_t(kQueryTile), p.q_tokens - q0));

  const int64_t key_end = visible_key_end(p, q0, rows);

  // Softmax state of row `softmax_row`, held (identically) by its kThreadsPerSoftmaxRow threads.
  const int softmax_row = threadIdx.x / kThreadsPerSoftmaxRow;
  const int softmax_part = threadIdx.x % kThreadsPerSoftmaxRow;
  float running_max = -INFINITY, running_sum = 0.0f;

  float accumulator[kRowsPerThread][kDimSlots] = {};

  load_tile<kBf16>(q_tile, dim_stride, p.q, head, q0, p.q_tokens, kQueryTile, dim);

  for (int64_t k0 = 0; k0 < key_end; k0 += kKeyTile) {
    const int keys = int(min(int64_t(kKeyTile), key_end - k0));
    // Uniform across the block, so skipping keeps every __syncthreads matched.
    if (p.block_mask && !key_tile_needed(p, head, q0, rows, k0, keys)) continue;

    // 1. S = scale * Q K^T, masked.
    load_tile<kBf16>(kv_tile, dim_stride, p.k, kv_head, k0, key_end, kKeyTile, dim);
    __syncthreads();
    float dot[kRowsPerThread][kKeysPerThread] = {};
    for (int d = 0; d < dim; ++d) {
      float q_values[kRowsPerThread], k_values[kKeysPerThread];
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i) q_values[i] = q_tile[(ty + kThreadGrid * i) * dim_stride + d];
#pragma unroll
      for (int j = 0; j < kKeysPerThread; ++j) k_values[j] = kv_tile[(tx + kThreadGrid * j) * dim_stride + d];
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
        for (int j = 0; j < kKeysPerThread; ++j) dot[i][j] = fmaf(q_values[i], k_values[j], dot[i][j]);
    }
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
      for (int j = 0; j < kKeysPerThread; ++j) {
        const int row = ty + kThreadGrid * i, key = tx + kThreadGrid * j;
        scores[row * kScoreStride + key] =
            score_visible(p, head, q0 + row, k0 + key, key_end) ? p.scale * dot[i][j] : -INFINITY;
      }
    __syncthreads();

    // 2. Online softmax over this tile; V replaces K in shared memory meanwhile.
    load_tile<kBf16>(kv_tile, dim_stride, p.v, kv_head, k0, key_end, kKeyTile, dim);
    {
      float* score_row = scores + softmax_row * kScoreStride + softmax_part * kKeysPerSoftmaxThread;
      float tile_max = -INFINITY;
      for (int j = 0; j < kKeysPerSoftmaxThread; ++j) tile_max = fmaxf(tile_max, score_row[j]);
      tile_max = max_over_row_lanes(tile_max);
      // A row with nothing visible in this tile keeps its state (P = 0). The shuffles stay outside the branch:
      // the rows of one warp may take different sides of it.
      const bool any_visible = tile_max != -INFINITY;
      const float new_max = fmaxf(running_max, tile_max);
      float sum = 0.0f;
      for (int j = 0; j < kKeysPerSoftmaxThread; ++j) {
        const float probability = any_visible ? expf(score_row[j] - new_max) : 0.0f;
        sum += probability;
        score_row[j] = kBf16 ? round_to_bf16(probability) : probability;
      }
      sum = sum_over_row_lanes(sum);
      float rescale = 1.0f;
      if (any_visible) {
        rescale = expf(running_max - new_max);  // 0 on the first visible tile (running_max = -inf)
        running_max = new_max;
        running_sum = running_sum * rescale + sum;
      }
      if (softmax_part == 0) row_factor[softmax_row] = rescale;
    }
    __syncthreads();

    // 3. O = O * rescale + P V.
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i) {
      const float rescale = row_factor[ty + kThreadGrid * i];
#pragma unroll
      for (int j = 0; j < kDimSlots; ++j) accumulator[i][j] *= rescale;
    }
    for (int key = 0; key < keys; ++key) {
      float probabilities[kRowsPerThread];
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i) probabilities[i] = scores[(ty + kThreadGrid * i) * kScoreStride + key];
#pragma unroll
      for (int j = 0; j < kDimSlots; ++j) {
        const int d = tx + kThreadGrid * j;
        if (d >= dim) break;
        const float value = kv_tile[key * dim_stride + d];
#pragma unroll
        for (int i = 0; i < kRowsPerThread; ++i) accumulator[i][j] = fmaf(probabilities[i], value, accumulator[i][j]);
      }
    }
    __syncthreads();  // before the next tile overwrites K/V, S and row_factor
  }

  if (softmax_part == 0) row_factor[softmax_row] = running_sum > 0.0f ? 1.0f / running_sum : 0.0f;
  __syncthreads();
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i) {
    const int row = ty + kThreadGrid * i;
    if (row >= rows) continue;
    float* target = p.out + ((q0 + row) * p.heads + head) * int64_t(dim);
#pragma unroll
    for (int j = 0; j < kDimSlots; ++j) {
      const int d = tx + kThreadGrid * j;
      if (d < dim) target[d] = accumulator[i][j] * row_factor[row];
    }
  }
}

inline size_t simt_shared_bytes(int dim) {
  return sizeof(float) * size_t(kQueryTile * (dim + 1) + kKeyTile * (dim + 1) + kQueryTile * kScoreStride + kQueryTile);
}

}  // namespace k5::cuda
