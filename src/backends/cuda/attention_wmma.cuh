// The WMMA tensor-core attention kernel (attention.cu launches it), in a header so that the CPU test suite runs this
// same device code under the warp emulator (tests/backends/cuda_emulated/).
//
// flash_attention_bf16_wmma_64x64: the same loop with both products on tensor cores (WMMA 16x16x16, BF16
// inputs, float32 accumulation; sm_80+), for head dims that are multiples of 16. 4 warps; warp w owns query
// rows 16w .. 16w + 15 of the 64, so its softmax needs no block-wide synchronisation. Per key tile:
//   1. the block loads K and V [64, D] as BF16 into shared memory;
//   2. warp w: S[16, 64] = Q_w K^T into shared memory (4 x D/16 MMAs);
//   3. warp w, two lanes per row: mask and scale S, online softmax, P as BF16, O rows rescaled;
//   4. warp w: O_w[16, D] += P_w V, the accumulator fragments loaded from and stored back to O in shared
//      memory (WMMA does not say which element of a fragment is which row, so the per-row rescale happens in
//      shared memory).
// Shared memory: Q, K, V [64, D+8] BF16, S [64, 68] F32, P [64, 72] BF16, O [64, D+4] F32, one float per row:
// 110 KiB for D = 128, 70 KiB for D = 64. The paddings keep WMMA's leading dimensions legal (multiples of 8
// BF16 / 4 floats) and every fragment pointer 32-byte aligned. A GPU that grants a block less (sm_86/sm_89 cards
// allow 99 KiB) runs the reference kernel's BF16 mode instead, which rounds the same way.
// Numerics: the roundings of the reference kernel's BF16 mode (q, k, v and P to BF16, round to nearest even);
// products of BF16 values are exact and the tensor cores accumulate in float32.
#pragma once

#ifndef K5_CUDA_EMULATION  // tests/backends/cuda_emulated/warp_emulator.h stands in for the CUDA headers
#include <cuda_bf16.h>
#include <mma.h>
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "backends/cuda/attention_simt.cuh"
#include "backends/cuda/attention_tiles.cuh"

namespace k5::cuda {

constexpr int kWmmaWarps = kQueryTile / 16;
constexpr int kWmmaThreads = 32 * kWmmaWarps;
constexpr int kScoreLd = kKeyTile + 4;        // floats
constexpr int kProbabilityLd = kKeyTile + 8;  // BF16 values

// Leading dims (Q/K/V rows in BF16 values, O rows in floats) and byte offsets into shared memory.
struct WmmaLayout {
  int dim, bf16_ld, out_ld;
  size_t q, k, v, scores, probabilities, out, row_factor, bytes;
};

__host__ __device__ inline WmmaLayout wmma_layout(int dim) {
  WmmaLayout l{};
  l.dim = dim;
  l.bf16_ld = dim + 8;
  l.out_ld = dim + 4;
  const size_t bf16_tile = size_t(kQueryTile) * l.bf16_ld * 2;  // a multiple of 128 bytes
  l.q = 0;
  l.k = l.q + bf16_tile;
  l.v = l.k + bf16_tile;
  l.scores = l.v + bf16_tile;
  l.probabilities = l.scores + size_t(kQueryTile) * kScoreLd * 4;
  l.out = l.probabilities + size_t(kQueryTile) * kProbabilityLd * 2;
  l.row_factor = l.out + size_t(kQueryTile) * l.out_ld * 4;
  l.bytes = l.row_factor + size_t(kQueryTile) * 4;
  return l;
}

// tile[row][d] (rows `ld` apart) = BF16 of token `first + row` of `head`, zeros past `end`.
__device__ inline void load_bf16_tile(__nv_bfloat16* tile, int ld, const HeadView& source, int head, int64_t first,
                                      int64_t end, int dim) {
  load_head_tile(source, head, first, end, kKeyTile, dim, kWmmaThreads,
                 [&](int row, int d, float value) { tile[row * ld + d] = __float2bfloat16_rn(value); });
}

static_assert(kQueryTile == kKeyTile, "load_bf16_tile loads Q tiles too");

__global__ void __launch_bounds__(kWmmaThreads) flash_attention_bf16_wmma_64x64(const AttentionParams p) {
  using namespace nvcuda;
  extern __shared__ __align__(128) unsigned char shared_memory[];
  const WmmaLayout l = wmma_layout(p.dim);
  auto* q_tile = reinterpret_cast<__nv_bfloat16*>(shared_memory + l.q);
  auto* k_tile = reinterpret_cast<__nv_bfloat16*>(shared_memory + l.k);
  auto* v_tile = reinterpret_cast<__nv_bfloat16*>(shared_memory + l.v);
  auto* scores = reinterpret_cast<float*>(shared_memory + l.scores);
  auto* probabilities = reinterpret_cast<__nv_bfloat16*>(shared_memory + l.probabilities);
  auto* out_tile = reinterpret_cast<float*>(shared_memory + l.out);
  auto* row_factor = reinterpret_cast<float*>(shared_memory + l.row_factor);

  const int dim = p.dim, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int head = blockIdx.y, kv_head = head / p.group;
  const int64_t q0 = int64_t(blockIdx.x) * kQueryTile;
  const int rows = int(min(int64_t(kQueryTile), p.q_tokens - q0));
  const int64_t key_end = visible_key_end(p, q0, rows);

  // Softmax state of row `softmax_row`, held by lanes 2r and 2r + 1 of its warp; each sees half the keys.
  const int softmax_row = warp * 16 + lane / 2, softmax_half = lane % 2;
  float running_max = -INFINITY, running_sum = 0.0f;

  load_bf16_tile(q_tile, l.bf16_ld, p.q, head, q0, p.q_tokens, dim);
  for (int i = threadIdx.x; i < kQueryTile * l.out_ld; i += kWmmaThreads) out_tile[i] = 0.0f;

  for (int64_t k0 = 0; k0 < key_end; k0 += kKeyTile) {
    const int keys = int(min(int64_t(kKeyTile), key_end - k0));
    if (p.block_mask && !key_tile_needed(p, head, q0, rows, k0, keys)) continue;  // uniform across the block

    // 1. K and V of this tile.
    load_bf16_tile(k_tile, l.bf16_ld, p.k, kv_head, k0, key_end, dim);
    load_bf16_tile(v_tile, l.bf16_ld, p.v, kv_head, k0, key_end, dim);
    __syncthreads();

    // 2. S_w = Q_w K^T (K stored [key][d] is K^T in column-major order).
    for (int n = 0; n < kKeyTile / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> dot;
      wmma::fill_fragment(dot, 0.0f);
      for (int kk = 0; kk < dim / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> q_fragment;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> k_fragment;
        wmma::load_matrix_sync(q_fragment, q_tile + warp * 16 * l.bf16_ld + kk * 16, l.bf16_ld);
        wmma::load_matrix_sync(k_fragment, k_tile + n * 16 * l.bf16_ld + kk * 16, l.bf16_ld);
        wmma::mma_sync(dot, q_fragment, k_fragment, dot);
      }
      wmma::store_matrix_sync(scores + warp * 16 * kScoreLd + n * 16, dot, kScoreLd, wmma::mem_row_major);
    }
    __syncwarp();

    // 3. Online softmax of the warp's rows.
    {
      const int first_key = softmax_half * (kKeyTile / 2);
      float* score_row = scores + softmax_row * kScoreLd + first_key;
      __nv_bfloat16* probability_row = probabilities + softmax_row * kProbabilityLd + first_key;
      float tile_max = -INFINITY;
      for (int j = 0; j < kKeyTile / 2; ++j) {
        const bool visible = score_visible(p, head, q0 + softmax_row, k0 + first_key + j, key_end);
        score_row[j] = visible ? p.scale * score_row[j] : -INFINITY;
        tile_max = fmaxf(tile_max, score_row[j]);
      }
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
      const bool any_visible = tile_max != -INFINITY;
      const float new_max = fmaxf(running_max, tile_max);
      float sum = 0.0f;
      for (int j = 0; j < kKeyTile / 2; ++j) {
        const float probability = any_visible ? expf(score_row[j] - new_max) : 0.0f;
        sum += probability;
        probability_row[j] = __float2bfloat16_rn(probability);
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      if (any_visible) {
        const float rescale = expf(running_max - new_max);  // 0 on the first visible tile
        running_max = new_max;
        running_sum = running_sum * rescale + sum;
        float* out_row = out_tile + softmax_row * l.out_ld;
        for (int d = softmax_half; d < dim; d += 2) out_row[d] *= rescale;
      }
    }
    __syncwarp();

    // 4. O_w += P_w V.
    for (int n = 0; n < dim / 16; ++n) {
      float* out_block = out_tile + warp * 16 * l.out_ld + n * 16;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> accumulator;
      wmma::load_matrix_sync(accumulator, out_block, l.out_ld, wmma::mem_row_major);
      for (int kk = 0; kk < kKeyTile / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> p_fragment;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> v_fragment;
        wmma::load_matrix_sync(p_fragment, probabilities + warp * 16 * kProbabilityLd + kk * 16, kProbabilityLd);
        wmma::load_matrix_sync(v_fragment, v_tile + kk * 16 * l.bf16_ld + n * 16, l.bf16_ld);
        wmma::mma_sync(accumulator, p_fragment, v_fragment, accumulator);
      }
      wmma::store_matrix_sync(out_block, accumulator, l.out_ld, wmma::mem_row_major);
    }
    __syncthreads();  // before the next tile overwrites K and V
  }

  if (softmax_half == 0) row_factor[softmax_row] = running_sum > 0.0f ? 1.0f / running_sum : 0.0f;
  __syncthreads();
  for (int i = threadIdx.x; i < rows * dim; i += kWmmaThreads) {
    const int row = i / dim, d = i % dim;
    p.out[((q0 + row) * p.heads + head) * int64_t(dim) + d] = out_tile[row * l.out_ld + d] * row_factor[row];
  }
}

}  // namespace k5::cuda
