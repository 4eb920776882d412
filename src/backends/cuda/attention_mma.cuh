// The register-tiled tensor-core attention kernel on mma.sync (sm_80+), launched by attention.cu; a header so
// that tests/backends/cuda_emulated/attention_kernels_test.cpp also runs it on the CPU, under the warp emulator.
//
// flash_attention_bf16_mma<D, W>: the FlashAttention-2 arrangement for the models' head dims (64, 128) with PTX
// mma.sync.m16n8k16 (BF16 inputs, float32 accumulation; sm_80+), whose fragment layouts the PTX ISA specifies,
// so S, P and O stay in registers. W warps own 16 query rows each (a block: 16 W rows; W = 8 for dense attention,
// 4 for block-sparse, so a skipped key tile is exactly a masked 64 x 64 block). With g = lane / 4 and
// t = lane % 4, a thread holds, of each 16 x 8 accumulator tile, rows g and g + 8 at columns 2t and 2t + 1; a
// row's 4 threads (lanes 4g .. 4g + 3) combine their maxima and sums with two shuffles. q, k and v are first
// rounded to BF16 once, into contiguous copies (to_bf16_heads), so the kernel reads half the bytes, 16 at a time.
// Per key tile: the block stages K and V [64, D] in shared memory; warp w computes S[16, 64] = Q_w K^T (Q_w's
// fragments loaded once), the online softmax on S in registers, P as BF16 A fragments straight from the S
// accumulators (the m16n8k16 A layout is two adjacent accumulator tiles), and O_w[16, D] += P V.
// Shared memory: Q [16 W, D + 8], K and V [64, D + 8], BF16 (the 8 staggers rows over the banks: every fragment
// load below is conflict-free): 68 KiB for D = 128, W = 8.
// Numerics: the roundings of attention.cu's kernels in BF16 mode (q, k, v and P rounded to nearest even); the
// exponentials are exp2 of log2(e)-scaled scores (attention_tiles.cuh).
#pragma once

#include <cstddef>
#include <cstdint>

#include "backends/cuda/attention_tiles.cuh"

namespace k5::cuda {

__host__ __device__ constexpr int mma_ld(int dim) { return dim + 8; }  // BF16 values per shared-memory row
constexpr size_t mma_shared_bytes(int dim, int warps) { return size_t(16 * warps + 2 * kKeyTile) * mma_ld(dim) * 2; }

// tile[row][d] (rows mma_ld(D) apart) = token `first + row` of `head` of a contiguous [tokens, heads, D] BF16
// tensor, zeros past `end`; 16-byte copies.
template <int kDim, int kThreadCount>
__device__ void load_bf16_rows(__nv_bfloat16* tile, int rows, const __nv_bfloat16* source, int heads, int head,
                               int64_t first, int64_t end) {
  constexpr int kChunks = kDim / 8;
  for (int i = threadIdx.x; i < rows * kChunks; i += kThreadCount) {
    const int row = i / kChunks, chunk = i % kChunks;
    const int64_t token = first + row;
    uint4 value = make_uint4(0u, 0u, 0u, 0u);
    if (token < end) value = *reinterpret_cast<const uint4*>(source + (token * heads + head) * kDim + 8 * chunk);
    *reinterpret_cast<uint4*>(tile + row * mma_ld(kDim) + 8 * chunk) = value;
  }
}

__device__ inline uint32_t shared_word(const __nv_bfloat16* tile, int index) {
  return *reinterpret_cast<const uint32_t*>(tile + index);
}

// d[4] += a[4] (16 x 16, row-major) x b[2] (16 x 8, column-major).
__device__ inline void mma_bf16_16x8x16(float* d, const uint32_t* a, const uint32_t* b) {
#ifdef K5_CUDA_EMULATION
  emulation::mma_m16n8k16_bf16(d, a, b);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// The BF16 copies of q, k, v (contiguous [tokens, heads, D]) the kernel reads instead of p.q, p.k, p.v.
struct Bf16Operands {
  const __nv_bfloat16 *q, *k, *v;
  int kv_heads;
};

template <int kDim, int kWarps>
__global__ void __launch_bounds__(32 * kWarps)
    flash_attention_bf16_mma(const AttentionParams p, const Bf16Operands in) {
  constexpr int kThreadCount = 32 * kWarps, kQueryRows = 16 * kWarps;
  constexpr int kLd = mma_ld(kDim), kDimSteps = kDim / 16, kDimTiles = kDim / 8, kKeyTiles = kKeyTile / 8;
  extern __shared__ __align__(16) unsigned char shared_memory[];
  auto* q_tile = reinterpret_cast<__nv_bfloat16*>(shared_memory);
  __nv_bfloat16* k_tile = q_tile + kQueryRows * kLd;
  __nv_bfloat16* v_tile = k_tile + kKeyTile * kLd;
  const auto* v_values = reinterpret_cast<const uint16_t*>(v_tile);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const int head = blockIdx.y, kv_head = head / p.group;
  const int64_t q0 = int64_t(blockIdx.x) * kQueryRows;
  const int rows = int(min(int64_t(kQueryRows), p.q_tokens - q0));
  const int64_t key_end = visible_key_end(p, q0, rows);
  const bool per_score_mask = p.key_mask || p.causal || (p.block_mask && p.mask_per_score);
  const int row0 = warp * 16 + g;  // this thread's rows in the block: row0 and row0 + 8
  const int64_t queries[2] = {q0 + row0, q0 + row0 + 8};

  load_bf16_rows<kDim, kThreadCount>(q_tile, kQueryRows, in.q, p.heads, head, q0, p.q_tokens);
  __syncthreads();
  uint32_t q_fragments[kDimSteps][4];
#pragma unroll
  for (int kk = 0; kk < kDimSteps; ++kk) {
    const int column = kk * 16 + 2 * t;
    q_fragments[kk][0] = shared_word(q_tile, row0 * kLd + column);
    q_fragments[kk][1] = shared_word(q_tile, (row0 + 8) * kLd + column);
    q_fragments[kk][2] = shared_word(q_tile, row0 * kLd + column + 8);
    q_fragments[kk][3] = shared_word(q_tile, (row0 + 8) * kLd + column + 8);
  }

  float out[kDimTiles][4];
#pragma unroll
  for (int n = 0; n < kDimTiles; ++n) out[n][0] = out[n][1] = out[n][2] = out[n][3] = 0.0f;
  RowSoftmax softmax;

  for (int64_t k0 = 0; k0 < key_end; k0 += kKeyTile) {
    const int keys = int(min(int64_t(kKeyTile), key_end - k0));
    if (p.block_mask && !key_tile_needed(p, head, q0, rows, k0, keys)) continue;  // uniform across the block
    __syncthreads();  // every warp is done with the previous K and V
    load_bf16_rows<kDim, kThreadCount>(k_tile, kKeyTile, in.k, in.kv_heads, kv_head, k0, key_end);
    load_bf16_rows<kDim, kThreadCount>(v_tile, kKeyTile, in.v, in.kv_heads, kv_head, k0, key_end);
    __syncthreads();

    // S = Q_w K^T: accumulator tile n holds keys 8n .. 8n + 7.
    float scores[kKeyTiles][4];
#pragma unroll
    for (int n = 0; n < kKeyTiles; ++n) {
      scores[n][0] = scores[n][1] = scores[n][2] = scores[n][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < kDimSteps; ++kk) {
        const int index = (8 * n + g) * kLd + kk * 16 + 2 * t;
        const uint32_t k_fragment[2] = {shared_word(k_tile, index), shared_word(k_tile, index + 8)};
        mma_bf16_16x8x16(scores[n], q_fragments[kk], k_fragment);
      }
    }

    online_softmax_tile(p, head, queries, k0, key_end, per_score_mask, scores, out, softmax);

    // O_w += P V. P's A fragment for keys 16j .. 16j + 15 is S tiles 2j and 2j + 1; V[key][d] is the B operand
    // (keys 2t, 2t + 1 and 2t + 8, 2t + 9 of the step, column d = 8n + g).
#pragma unroll
    for (int j = 0; j < kKeyTile / 16; ++j) {
      uint32_t p_fragment[4];
      probability_fragment(scores, j, p_fragment);
      const int key = 16 * j + 2 * t;
#pragma unroll
      for (int n = 0; n < kDimTiles; ++n) {
        const int d = 8 * n + g;
        const uint32_t v_fragment[2] = {
            uint32_t(v_values[key * kLd + d]) | uint32_t(v_values[(key + 1) * kLd + d]) << 16,
            uint32_t(v_values[(key + 8) * kLd + d]) | uint32_t(v_values[(key + 9) * kLd + d]) << 16};
        mma_bf16_16x8x16(out[n], p_fragment, v_fragment);
      }
    }
  }

  store_output_rows(p, head, q0, row0, rows, out, softmax);
}

// The BF16 copy of q, k and v that the tensor-core kernels read (to_bf16_heads in attention.cu launches it).
// out (contiguous [tokens, heads, dim] BF16) = source rounded to nearest even.
__global__ void to_bf16_heads_kernel(const HeadView source, int64_t tokens, int heads, int dim, __nv_bfloat16* out) {
  const int64_t count = tokens * heads * dim;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t token = i / (int64_t(heads) * dim);
    const int head = int(i / dim % heads), d = int(i % dim);
    out[i] = __float2bfloat16_rn(source.data[token * source.token_stride + head * source.head_stride + d]);
  }
}

}  // namespace k5::cuda
