// What the attention kernels of attention.cu and attention_wgmma.cu share: the parameters of one call, the
// visibility rules (causal, key mask, NABLA block mask), and the online softmax of the register-tiled tensor-core
// kernels (mma.sync and wgmma), whose score and output tiles are held in the m16n8 accumulator layout.
#pragma once

#ifndef K5_CUDA_EMULATION  // tests/backends/cuda_emulated/warp_emulator.h stands in for the CUDA headers
#include <cuda_bf16.h>
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace k5::cuda {

constexpr int kKeyTile = 64;  // keys per shared-memory tile, and the NABLA block the tensor-core kernels skip whole

// One of q, k, v: [tokens, heads, D] with a contiguous last dim.
struct HeadView {
  const float* data;
  int64_t token_stride, head_stride;
};

struct AttentionParams {
  HeadView q, k, v;
  float* out;  // [q_tokens, heads, dim] contiguous
  int64_t q_tokens, k_tokens;
  int heads, group, dim;  // group = query heads per key/value head
  float scale;
  bool causal;
  int64_t causal_offset;      // Lk - Lq: query i sees keys j <= i + causal_offset
  const uint8_t* key_mask;    // [k_tokens], 0 = key invisible; null = all visible
  const uint8_t* block_mask;  // [heads, query_blocks, key_blocks]; null = dense attention
  int64_t block_size, query_blocks, key_blocks;
  bool mask_per_score;  // block_size is not a multiple of the tiles: test the block mask for each score
};

// The keys a block of queries [q0, q0 + rows) can see at all: all of them, or up to the causal limit.
__device__ inline int64_t visible_key_end(const AttentionParams& p, int64_t q0, int rows) {
  if (!p.causal) return p.k_tokens;
  return max(int64_t(0), min(p.k_tokens, q0 + rows + p.causal_offset));
}

__device__ inline bool block_kept(const AttentionParams& p, int head, int64_t query_block, int64_t key_block) {
  return p.block_mask[(head * p.query_blocks + query_block) * p.key_blocks + key_block] != 0;
}

// Whether any kept (query block, key block) pair meets queries [q0, q0 + rows) x keys [k0, k0 + keys).
__device__ inline bool key_tile_needed(const AttentionParams& p, int head, int64_t q0, int rows, int64_t k0, int keys) {
  const int64_t first_query_block = q0 / p.block_size, last_query_block = (q0 + rows - 1) / p.block_size;
  const int64_t first_key_block = k0 / p.block_size, last_key_block = (k0 + keys - 1) / p.block_size;
  for (int64_t qb = first_query_block; qb <= last_query_block; ++qb)
    for (int64_t kb = first_key_block; kb <= last_key_block; ++kb)
      if (block_kept(p, head, qb, kb)) return true;
  return false;
}

__device__ inline bool score_visible(const AttentionParams& p, int head, int64_t query, int64_t key, int64_t key_end) {
  if (query >= p.q_tokens || key >= key_end) return false;
  if (p.key_mask && !p.key_mask[key]) return false;
  if (p.causal && key > query + p.causal_offset) return false;
  if (p.block_mask && p.mask_per_score && !block_kept(p, head, query / p.block_size, key / p.block_size)) return false;
  return true;
}

// Tokens [first, first + rows) of `head`, their `dim` values each, handed to store(row, d, value) by `threads`
// threads (threadIdx.x strided), zeros for tokens from `end` on: how the CUDA-core and WMMA kernels fill their tiles.
template <typename Store>
__device__ inline void load_head_tile(const HeadView& source, int head, int64_t first, int64_t end, int rows, int dim,
                                      int threads, Store&& store) {
  for (int i = threadIdx.x; i < rows * dim; i += threads) {
    const int row = i / dim, d = i % dim;
    const int64_t token = first + row;
    store(row, d, token < end ? source.data[token * source.token_stride + head * source.head_stride + d] : 0.0f);
  }
}

// Sum and max over 4 neighbouring lanes (lanes 4g .. 4g + 3): one score row of the reference kernel, and one row
// of an m16n8 accumulator tile.
constexpr int kLanesPerRow = 4;

__device__ inline float sum_over_row_lanes(float value) {
  for (int offset = kLanesPerRow / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

__device__ inline float max_over_row_lanes(float value) {
  for (int offset = kLanesPerRow / 2; offset > 0; offset /= 2)
    value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}

// ---- Register tiles in the m16n8 accumulator layout ----------------------------------------------------------
//
// A warp owns 16 query rows. With g = lane / 4 and t = lane % 4, a thread holds, of each 16 x 8 tile n, rows g and
// g + 8 (elements e = 0, 1 and e = 2, 3) at columns 8n + 2t + e % 2. This is the accumulator layout of
// mma.sync.m16n8k16 and, per warp of a warpgroup, of wgmma.m64nNk16. Scores: tile n = keys 8n .. 8n + 7 of the
// key tile; output: tile n = head dims 8n .. 8n + 7.

// The online-softmax state of this thread's two rows.
struct RowSoftmax {
  float running_max[2] = {-INFINITY, -INFINITY};
  float running_sum[2] = {0.0f, 0.0f};
};

// One key tile [k0, k0 + 64): scores (Q K^T) -> scaled and masked -> P = exp(S - running max) in place
// (unrounded), running max and sum updated, and the factors the output rows must be rescaled by in `rescale`.
// `queries` are this thread's two rows.
// The exponentials are exp2 of scores pre-multiplied by log2(e) (the running max lives in that domain too): one
// special-function instruction each instead of expf's range reduction; the probabilities are rounded to BF16
// afterwards, far coarser than the difference.
template <int kKeyTiles>
__device__ inline void softmax_scores(const AttentionParams& p, int head, const int64_t (&queries)[2], int64_t k0,
                                      int64_t key_end, bool per_score_mask, float (&scores)[kKeyTiles][4],
                                      RowSoftmax& state, float (&rescale)[2]) {
  const int t = threadIdx.x % 32 % 4;
  const float scale = p.scale * 1.4426950408889634f;  // log2(e)
  float tile_max[2] = {-INFINITY, -INFINITY};
  if (!per_score_mask && k0 + 8 * kKeyTiles <= key_end) {  // every key of the tile visible (uniform)
#pragma unroll
    for (int n = 0; n < kKeyTiles; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        scores[n][e] *= scale;
        tile_max[e / 2] = fmaxf(tile_max[e / 2], scores[n][e]);
      }
  } else {
#pragma unroll
    for (int n = 0; n < kKeyTiles; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t key = k0 + 8 * n + 2 * t + e % 2;
        const bool visible = per_score_mask ? score_visible(p, head, queries[e / 2], key, key_end) : key < key_end;
        scores[n][e] = visible ? scale * scores[n][e] : -INFINITY;
        tile_max[e / 2] = fmaxf(tile_max[e / 2], scores[n][e]);
      }
  }
  // A row with nothing visible in this tile keeps its state (P = 0); the shuffles stay outside the branches.
  float sum[2] = {0.0f, 0.0f};
  bool any_visible[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    tile_max[r] = max_over_row_lanes(tile_max[r]);
    any_visible[r] = tile_max[r] != -INFINITY;
    const float new_max = fmaxf(state.running_max[r], tile_max[r]);
    rescale[r] = any_visible[r] ? exp2f(state.running_max[r] - new_max) : 1.0f;  // 0 on the first visible tile
    if (any_visible[r]) state.running_max[r] = new_max;
  }
#pragma unroll
  for (int n = 0; n < kKeyTiles; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float probability = any_visible[e / 2] ? exp2f(scores[n][e] - state.running_max[e / 2]) : 0.0f;
      sum[e / 2] += probability;
      scores[n][e] = probability;
    }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    sum[r] = sum_over_row_lanes(sum[r]);
    if (any_visible[r]) state.running_sum[r] = state.running_sum[r] * rescale[r] + sum[r];
  }
}

template <int kDimTiles>
__device__ inline void rescale_rows(float (&out)[kDimTiles][4], const float (&rescale)[2]) {
#pragma unroll
  for (int n = 0; n < kDimTiles; ++n) {
    out[n][0] *= rescale[0];
    out[n][1] *= rescale[0];
    out[n][2] *= rescale[1];
    out[n][3] *= rescale[1];
  }
}

// softmax_scores, then the output rows rescaled at once.
template <int kKeyTiles, int kDimTiles>
__device__ inline void online_softmax_tile(const AttentionParams& p, int head, const int64_t (&queries)[2], int64_t k0,
                                           int64_t key_end, bool per_score_mask, float (&scores)[kKeyTiles][4],
                                           float (&out)[kDimTiles][4], RowSoftmax& state) {
  float rescale[2];
  softmax_scores(p, head, queries, k0, key_end, per_score_mask, scores, state, rescale);
  rescale_rows(out, rescale);
}

__device__ inline uint32_t pack_bf16(float low, float high) {
  const __nv_bfloat162 pair = __floats2bfloat162_rn(low, high);
  return *reinterpret_cast<const uint32_t*>(&pair);
}

// P of keys 16j .. 16j + 15 as the A operand of an m16n8k16 (or, per warp, m64nNk16) product, rounded to BF16:
// score tiles 2j and 2j + 1, since the 16 x 16 A layout is two adjacent accumulator tiles.
template <int kKeyTiles>
__device__ inline void probability_fragment(const float (&scores)[kKeyTiles][4], int j, uint32_t (&fragment)[4]) {
  fragment[0] = pack_bf16(scores[2 * j][0], scores[2 * j][1]);
  fragment[1] = pack_bf16(scores[2 * j][2], scores[2 * j][3]);
  fragment[2] = pack_bf16(scores[2 * j + 1][0], scores[2 * j + 1][1]);
  fragment[3] = pack_bf16(scores[2 * j + 1][2], scores[2 * j + 1][3]);
}

// out / running sum of this thread's rows (block rows row0 and row0 + 8 of queries from q0; 0 for a row that saw
// no visible key, as the CPU op) into p.out.
template <int kDimTiles>
__device__ inline void store_output_rows(const AttentionParams& p, int head, int64_t q0, int row0, int rows,
                                         const float (&out)[kDimTiles][4], const RowSoftmax& state) {
  const int t = threadIdx.x % 32 % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + 8 * r;
    if (row >= rows) continue;
    const float inverse = state.running_sum[r] > 0.0f ? 1.0f / state.running_sum[r] : 0.0f;
    float* target = p.out + ((q0 + row) * p.heads + head) * int64_t(8 * kDimTiles);
#pragma unroll
    for (int n = 0; n < kDimTiles; ++n) {
      target[8 * n + 2 * t] = out[n][2 * r] * inverse;
      target[8 * n + 2 * t + 1] = out[n][2 * r + 1] * inverse;
    }
  }
}

// A contiguous BF16 copy ([tokens, heads, dim], rounded to nearest even) of one of q, k, v (attention.cu).
void to_bf16_heads(const HeadView& source, int64_t tokens, int heads, int dim, __nv_bfloat16* out);

// The Hopper kernel (attention_wgmma.cu): Precision::bf16, head dim 64 or 128, an sm_90 device; `overlap`: its
// pipelined loop (scores of one key tile with P V of the previous), else the serial one.
bool wgmma_attention_available(int dim);
void launch_flash_attention_bf16_wgmma(const AttentionParams& p, bool overlap);

}  // namespace k5::cuda
