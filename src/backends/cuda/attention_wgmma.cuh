// Dense and block-sparse (NABLA) attention on Hopper (sm_90a): the kernel attention.cu picks for Precision::bf16
// and the models' head dims (64, 128) on an sm_90 GPU, launched by attention_wgmma.cu (a header so that
// tests/backends/cuda_emulated/attention_kernels_test.cpp also runs it on the CPU, under the warp emulator). Same
// numerics as the mma.sync kernel (q, k, v and P rounded to BF16, float32 accumulation), with both products on
// the warpgroup tensor-core instruction wgmma, the only one that reaches an H100's full tensor-core rate.
//
// A block is W warpgroups (128 threads each) over 64 W query rows of one head (wgmma_warpgroups: 1 for NABLA, so a
// key tile skipped is exactly a masked 64 x 64 block; 2 or 3 for dense attention). Per key tile of 64:
//   S[64, 64] = Q_wg K^T   wgmma m64n64k16, Q and K from shared memory (descriptors), D / 16 steps;
//   online softmax          in registers (attention_tiles.cuh: the accumulator layout is mma.sync's, per warp);
//   O[64, D] += P V         wgmma m64nDk16, P as register A fragments, V (stored transposed) from shared memory.
// Two loops (kOverlap): the serial one waits for each product before the next step, with K and V double-buffered
// (the next tile's copies, cp.async 16 bytes each, fly while the current one is multiplied); the overlapped one
// (FlashAttention 3's intra-warpgroup pipelining) issues the scores of tile t and P V of tile t - 1 together, so
// the softmax of tile t runs while the tensor cores finish P V, with three buffers (tiles t - 1, t, t + 1).
//
// q, k are first rounded to contiguous BF16 copies [tokens, heads, D] and v to a transposed one [kv heads, D, keys
// padded to 64 with zeros], so every shared-memory operand is "K-major" (the reduction dimension contiguous) and
// stored in wgmma's 128-byte swizzled layout: 64-value panels of the reduction dimension, one after the other;
// within a panel, row r is 128 bytes at 128 r and its 16-byte chunk c sits at chunk c ^ (r % 8), which spreads the
// 8 rows a tensor-core read touches over all banks. A descriptor gives the start (advanced by 32 bytes per 16-value
// step inside a panel), 1024 bytes between groups of 8 rows, and the swizzle mode.
//
// Shared memory: Q [64 W, D], two or three buffers of K [64, D] and V^T [D, 64], BF16, plus 1 KiB to align the
// tiles to the swizzle's 1024-byte period: with three, 129 KiB for D = 128, W = 2; 73 KiB for D = 64, W = 3.
// Registers (bench/results/cuda-ptxas.md): the serial loop at D = 64 is bounded to two blocks per SM (128
// registers, a 12-byte spill); everything else to one (the overlapped loop needs 164 at D = 64, 209 at D = 128).
#pragma once

#include <cstddef>
#include <cstdint>

#include "backends/cuda/attention_tiles.cuh"
#include "backends/cuda/static_shared.cuh"

namespace k5::cuda {

constexpr int kWarpgroupRows = 64;
constexpr int kSwizzlePeriod = 1024;  // bytes: 8 rows of 128

// The BF16 copies the kernel reads: q and k [tokens, heads, D], v transposed [kv heads, D, padded_keys].
struct WgmmaOperands {
  const __nv_bfloat16 *q, *k, *v_transposed;
  int kv_heads;
  int64_t padded_keys;
};

// Warpgroups per block: one for NABLA (a skipped key tile is then exactly a masked 64 x 64 block); for dense attention
// three at D = 64 with the overlapped loop (192 query rows share each K/V tile: a third less K/V traffic from L2 than
// with two, and three warpgroups of its 164 registers still fit an SM), else two.
constexpr int wgmma_warpgroups(int dim, bool block_sparse, bool overlap) {
  if (block_sparse) return 1;
  return dim == 64 && overlap ? 3 : 2;
}

// Q, then `buffers` K and V^T tiles (2 for the serial loop, 3 for the overlapped one), then alignment slack.
constexpr size_t wgmma_shared_bytes(int dim, int warpgroups, int buffers) {
  return size_t(kWarpgroupRows * warpgroups + 2 * buffers * kKeyTile) * dim * 2 + kSwizzlePeriod;
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL) || defined(K5_CUDA_EMULATION)  // the device code: sm_90a pass only

constexpr int kPanelValues = 64;  // BF16 values in one 128-byte swizzled row

// Byte offset of 16-byte chunk `chunk` of row `row` in a swizzled tile of `rows` rows (see the top of the file).
__device__ inline uint32_t swizzled_offset(int rows, int row, int chunk) {
  return uint32_t((chunk / 8) * rows * 128 + row * 128 + ((chunk % 8) ^ (row % 8)) * 16);
}

// The descriptor of a K-major, 128-byte swizzled operand starting at `start` (inside a 1024-byte aligned tile).
__device__ inline uint64_t tile_descriptor(const unsigned char* start) {
  const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(start));
  return uint64_t((address & 0x3FFFF) >> 4)     // start address
         | uint64_t(16 >> 4) << 16              // leading byte offset: unused with this swizzle
         | uint64_t(kSwizzlePeriod >> 4) << 32  // stride byte offset: 8-row groups
         | uint64_t(1) << 62;                   // 128-byte swizzle
}

// Reduction step `step` (values 16 step .. 16 step + 15) of rows [row0, row0 + 64) of a swizzled tile of `rows` rows.
__device__ inline uint64_t step_descriptor(const unsigned char* tile, int rows, int row0, int step) {
  return tile_descriptor(tile + (step / 4) * rows * 128 + row0 * 128 + (step % 4) * 32);
}

__device__ inline void copy_16_async(uint32_t shared_address, const void* global, bool valid) {
#ifdef K5_CUDA_EMULATION
  emulation::copy_16(shared_address, global, valid);
#else
  // src-size 0 reads nothing and fills the 16 bytes with zeros.
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address), "l"(global), "r"(valid ? 16 : 0)
               : "memory");
#endif
}
__device__ inline void commit_copies() {
#ifdef K5_CUDA_EMULATION
  emulation::commit_copies();
#else
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int kPending>
__device__ inline void wait_copies() {
#ifdef K5_CUDA_EMULATION
  emulation::wait_copies(kPending);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
#endif
}
// Shared memory written by ordinary stores and cp.async becomes visible to wgmma (the async proxy).
__device__ inline void fence_async_proxy() {
#ifndef K5_CUDA_EMULATION
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// A [kRows, kCols] BF16 tile into shared memory, swizzled: row r from source + r * row_stride (16-byte aligned),
// rows from `valid_rows` on zero-filled.
template <int kRows, int kCols, int kThreadCount>
__device__ inline void copy_tile_async(unsigned char* tile, const __nv_bfloat16* source, int64_t row_stride,
                                       int64_t valid_rows) {
  constexpr int kChunks = kCols / 8;
  const uint32_t base = static_cast<uint32_t>(__cvta_generic_to_shared(tile));
  for (int i = threadIdx.x; i < kRows * kChunks; i += kThreadCount) {
    const int row = i / kChunks, chunk = i % kChunks;
    const bool valid = row < valid_rows;
    copy_16_async(base + swizzled_offset(kRows, row, chunk), source + (valid ? row * row_stride + 8 * chunk : 0),
                  valid);
  }
}

__device__ inline void wgmma_fence() {
#ifdef K5_CUDA_EMULATION
  emulation::wgmma_fence();
#else
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ inline void wgmma_commit() {
#ifdef K5_CUDA_EMULATION
  emulation::wgmma_commit();
#else
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
// Waits until at most kPending of this thread's newest committed groups are in flight (the older are done).
template <int kPending>
__device__ inline void wgmma_wait() {
#ifdef K5_CUDA_EMULATION
  emulation::wgmma_wait(kPending);
#else
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
#endif
}

// Keeps the compiler from moving reads or writes of wgmma's registers across the fence / wait around it.
template <int kTiles>
__device__ inline void pin_registers(float (&d)[kTiles][4]) {
#ifndef K5_CUDA_EMULATION
#pragma unroll
  for (int n = 0; n < kTiles; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[n][e])::"memory");
#else
  (void)d;
#endif
}
template <int kSteps>
__device__ inline void pin_registers(uint32_t (&a)[kSteps][4]) {
#ifndef K5_CUDA_EMULATION
#pragma unroll
  for (int j = 0; j < kSteps; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(a[j][e])::"memory");
#else
  (void)a;
#endif
}

// d (64 x 64: this thread's part) += A (64 x 16) x B (16 x 64), both from shared memory (descriptors).
__device__ inline void wgmma_64x64x16(float (&d)[8][4], uint64_t a, uint64_t b) {
#ifdef K5_CUDA_EMULATION
  emulation::wgmma_m64k16_bf16(&d[0][0], 64, nullptr, a, b);
#else
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "
      "%24, %25, %26, %27, %28, %29, %30, %31}, "
      "%32, %33, 1, 1, 1, 0, 0;\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]),
        "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]),
        "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]),
        "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
        "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
      : "l"(a), "l"(b));
#endif
}

// d (64 x 64: this thread's part) += A (64 x 16, this thread's fragment) x B (16 x 64, a descriptor).
__device__ inline void wgmma_64x64x16(float (&d)[8][4], const uint32_t (&a)[4], uint64_t b) {
#ifdef K5_CUDA_EMULATION
  emulation::wgmma_m64k16_bf16(&d[0][0], 64, a, 0, b);
#else
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "
      "%24, %25, %26, %27, %28, %29, %30, %31}, "
      "{%32, %33, %34, %35}, %36, 1, 1, 1, 0;\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]),
        "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]),
        "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]),
        "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
        "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
#endif
}

// d (64 x 128: this thread's part) += A (64 x 16, this thread's fragment) x B (16 x 128, a descriptor).
__device__ inline void wgmma_64x128x16(float (&d)[16][4], const uint32_t (&a)[4], uint64_t b) {
#ifdef K5_CUDA_EMULATION
  emulation::wgmma_m64k16_bf16(&d[0][0], 128, a, 0, b);
#else
  asm volatile(
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, "
      "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, "
      "%46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "{%64, %65, %66, %67}, %68, 1, 1, 1, 0;\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]),
        "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]),
        "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]),
        "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),
        "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3]), "+f"(d[8][0]), "+f"(d[8][1]), "+f"(d[8][2]),
        "+f"(d[8][3]), "+f"(d[9][0]), "+f"(d[9][1]), "+f"(d[9][2]), "+f"(d[9][3]), "+f"(d[10][0]), "+f"(d[10][1]),
        "+f"(d[10][2]), "+f"(d[10][3]), "+f"(d[11][0]), "+f"(d[11][1]), "+f"(d[11][2]), "+f"(d[11][3]), "+f"(d[12][0]),
        "+f"(d[12][1]), "+f"(d[12][2]), "+f"(d[12][3]), "+f"(d[13][0]), "+f"(d[13][1]), "+f"(d[13][2]), "+f"(d[13][3]),
        "+f"(d[14][0]), "+f"(d[14][1]), "+f"(d[14][2]), "+f"(d[14][3]), "+f"(d[15][0]), "+f"(d[15][1]), "+f"(d[15][2]),
        "+f"(d[15][3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));
#endif
}

template <int kDimTiles>
__device__ inline void wgmma_pv(float (&d)[kDimTiles][4], const uint32_t (&a)[4], uint64_t b) {
  if constexpr (kDimTiles == 8)
    wgmma_64x64x16(d, a, b);
  else
    wgmma_64x128x16(d, a, b);
}

#endif

template <int kDim, int kWarpgroups, bool kOverlap>
__global__ void __launch_bounds__(128 * kWarpgroups, kDim == 64 && !kOverlap ? 2 : 1)
    flash_attention_bf16_wgmma(const AttentionParams p, const WgmmaOperands in) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL) || defined(K5_CUDA_EMULATION)
  static_assert(kDim % kPanelValues == 0 && kKeyTile == kPanelValues, "tiles are whole swizzled panels");
  constexpr int kThreadCount = 128 * kWarpgroups, kQueryRows = kWarpgroupRows * kWarpgroups;
  constexpr int kDimTiles = kDim / 8, kKeyTiles = kKeyTile / 8, kDimSteps = kDim / 16, kKeySteps = kKeyTile / 16;
  constexpr int kQBytes = kQueryRows * kDim * 2, kKBytes = kKeyTile * kDim * 2, kVBytes = kDim * kKeyTile * 2;
  extern __shared__ unsigned char shared_memory[];
  const uint32_t misalignment = static_cast<uint32_t>(__cvta_generic_to_shared(shared_memory)) % kSwizzlePeriod;
  unsigned char* q_tile = shared_memory + (kSwizzlePeriod - misalignment) % kSwizzlePeriod;
  unsigned char* kv_tiles = q_tile + kQBytes;  // buffer b: K at b (kKBytes + kVBytes), V^T after it

  const int warpgroup = threadIdx.x / 128, warp = threadIdx.x / 32 % 4, g = threadIdx.x % 32 / 4;
  const int head = blockIdx.y, kv_head = head / p.group;
  const int64_t q0 = int64_t(blockIdx.x) * kQueryRows;
  const int rows = int(min(int64_t(kQueryRows), p.q_tokens - q0));
  const int64_t key_end = visible_key_end(p, q0, rows);
  const bool per_score_mask = p.key_mask || p.causal || (p.block_mask && p.mask_per_score);
  const int row0 = warpgroup * kWarpgroupRows + warp * 16 + g;  // this thread's rows: row0 and row0 + 8
  const int64_t queries[2] = {q0 + row0, q0 + row0 + 8};

  // The first key tile from k0 on that is visited (NABLA skips the others); uniform across the block.
  const auto next_tile = [&](int64_t k0) {
    for (; k0 < key_end; k0 += kKeyTile)
      if (!p.block_mask || key_tile_needed(p, head, q0, rows, k0, int(min(int64_t(kKeyTile), key_end - k0)))) break;
    return k0;
  };
  const auto k_tile = [&](int buffer) { return kv_tiles + buffer * (kKBytes + kVBytes); };
  const auto copy_keys_and_values = [&](int64_t k0, int buffer) {
    copy_tile_async<kKeyTile, kDim, kThreadCount>(k_tile(buffer), in.k + (k0 * in.kv_heads + kv_head) * kDim,
                                                  int64_t(in.kv_heads) * kDim, p.k_tokens - k0);
    copy_tile_async<kDim, kKeyTile, kThreadCount>(k_tile(buffer) + kKBytes,
                                                  in.v_transposed + int64_t(kv_head) * kDim * in.padded_keys + k0,
                                                  in.padded_keys, kDim);
  };
  // Copies of a tile issued earlier (and of Q) have landed for everyone; the newest group may still fly.
  const auto wait_for_tile = [] {
    wait_copies<1>();
    fence_async_proxy();
    __syncthreads();
  };

  float out[kDimTiles][4];
#pragma unroll
  for (int n = 0; n < kDimTiles; ++n) out[n][0] = out[n][1] = out[n][2] = out[n][3] = 0.0f;
  RowSoftmax softmax;
  float scores[kKeyTiles][4], rescale[2];
  uint32_t p_fragments[kKeySteps][4];

  // S = Q_wg K^T of the tile in `buffer`, issued and committed (after a wgmma_fence; the caller waits).
  const auto issue_scores = [&](int buffer) {
#pragma unroll
    for (int step = 0; step < kDimSteps; ++step)
      wgmma_64x64x16(scores, step_descriptor(q_tile, kQueryRows, warpgroup * kWarpgroupRows, step),
                     step_descriptor(k_tile(buffer), kKeyTile, 0, step));
    wgmma_commit();
  };
  // O_wg += P V of the tile in `buffer`, B[key][d] = V^T[d][key] (the keys contiguous), issued and committed.
  const auto issue_values = [&](int buffer) {
#pragma unroll
    for (int j = 0; j < kKeySteps; ++j)
      wgmma_pv(out, p_fragments[j], step_descriptor(k_tile(buffer) + kKBytes, kDim, 0, j));
    wgmma_commit();
  };
  const auto clear_scores = [&] {
#pragma unroll
    for (int n = 0; n < kKeyTiles; ++n) scores[n][0] = scores[n][1] = scores[n][2] = scores[n][3] = 0.0f;
    pin_registers(scores);
  };
  const auto pack_probabilities = [&] {
#pragma unroll
    for (int j = 0; j < kKeySteps; ++j) probability_fragment(scores, j, p_fragments[j]);
    pin_registers(p_fragments);
  };

  copy_tile_async<kQueryRows, kDim, kThreadCount>(q_tile, in.q + (q0 * p.heads + head) * kDim, int64_t(p.heads) * kDim,
                                                  p.q_tokens - q0);
  int64_t k0 = next_tile(0);
  if (k0 < key_end) copy_keys_and_values(k0, 0);
  commit_copies();

  if constexpr (!kOverlap) {
    // Per tile: S, wait, softmax, P V, wait; the next tile's copies fly meanwhile (two buffers).
    for (int buffer = 0; k0 < key_end; buffer ^= 1) {
      const int64_t next = next_tile(k0 + kKeyTile);
      if (next < key_end) copy_keys_and_values(next, buffer ^ 1);
      commit_copies();
      wait_for_tile();
      clear_scores();
      wgmma_fence();
      issue_scores(buffer);
      wgmma_wait<0>();
      pin_registers(scores);
      online_softmax_tile(p, head, queries, k0, key_end, per_score_mask, scores, out, softmax);
      pack_probabilities();
      pin_registers(out);
      wgmma_fence();
      issue_values(buffer);
      wgmma_wait<0>();
      pin_registers(out);
      __syncthreads();  // every warpgroup is done with this buffer before the next iteration refills it
      k0 = next;
    }
  } else if (k0 < key_end) {
    // FlashAttention 3's intra-warpgroup overlap: the tensor cores compute the scores of tile t and P V of tile
    // t - 1 while this warpgroup's softmax of tile t waits only for the scores; the output rows are rescaled once the
    // P V product has landed in them. Three buffers: tile t - 1 (P V), tile t (S) and tile t + 1 (copies in flight).
    int64_t following = next_tile(k0 + kKeyTile);
    if (following < key_end) copy_keys_and_values(following, 1);
    commit_copies();
    wait_for_tile();
    clear_scores();
    wgmma_fence();
    issue_scores(0);
    wgmma_wait<0>();
    pin_registers(scores);
    softmax_scores(p, head, queries, k0, key_end, per_score_mask, scores, softmax, rescale);  // out is still zero
    pack_probabilities();
    int buffer = 0;  // the buffer of the tile whose P is in p_fragments, not yet multiplied by its V
    while (following < key_end) {
      k0 = following;
      following = next_tile(k0 + kKeyTile);
      if (following < key_end) copy_keys_and_values(following, (buffer + 2) % 3);  // the buffer of tile t - 2
      commit_copies();
      wait_for_tile();
      clear_scores();
      pin_registers(out);
      wgmma_fence();
      issue_scores((buffer + 1) % 3);
      issue_values(buffer);
      wgmma_wait<1>();  // the scores have landed; P V may still be in flight
      pin_registers(scores);
      softmax_scores(p, head, queries, k0, key_end, per_score_mask, scores, softmax, rescale);
      wgmma_wait<0>();  // P V has landed in out, and p_fragments may be overwritten
      pin_registers(out);
      rescale_rows(out, rescale);
      pack_probabilities();
      __syncthreads();  // every warpgroup is done with `buffer` before the next iteration refills it
      buffer = (buffer + 1) % 3;
    }
    pin_registers(out);
    wgmma_fence();
    issue_values(buffer);  // the last tile's P V
    wgmma_wait<0>();
    pin_registers(out);
  }
  wait_copies<0>();  // a block that visited no key tile still has Q's copies in flight
  store_output_rows(p, head, q0, row0, rows, out, softmax);
#else
  __trap();  // compiled for an architecture without wgmma: wgmma_attention_available() said no
#endif
}

// The transposed BF16 copy of v that the wgmma kernel reads (attention_wgmma.cu launches it).
// out[head][d][token] (tokens zero-padded to `padded_keys`) = v[token][head][d] rounded to BF16; 32 x 32 tiles
// through shared memory so both the reads and the writes are coalesced.
__global__ void to_bf16_transposed_kernel(const HeadView source, int64_t tokens, int64_t padded_keys, int dim,
                                          __nv_bfloat16* out) {
  K5_STATIC_SHARED float tile[32][33];
  const int head = blockIdx.z, d0 = blockIdx.y * 32;
  const int64_t token0 = int64_t(blockIdx.x) * 32;
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t token = token0 + i;
    tile[i][threadIdx.x] =
        token < tokens ? source.data[token * source.token_stride + head * source.head_stride + d0 + threadIdx.x] : 0.0f;
  }
  __syncthreads();
  for (int i = threadIdx.y; i < 32; i += blockDim.y)
    out[(int64_t(head) * dim + d0 + i) * padded_keys + token0 + threadIdx.x] =
        __float2bfloat16_rn(tile[threadIdx.x][i]);
}

}  // namespace k5::cuda
