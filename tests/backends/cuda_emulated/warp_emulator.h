// A CPU stand-in for the CUDA features the CUDA backend's kernels use, so that their device code
// (src/backends/cuda/*.cuh) runs, unchanged, in the CPU test suite: CI has no GPU. Every thread of a block is a fiber
// (ucontext); blocks run one after another. Include this header before the kernel headers, which then compile with
// K5_CUDA_EMULATION defined and call the `emulation::` functions below where the GPU code has PTX.
//
// What is emulated, and how faithfully:
// - __syncthreads, and the warp (32 lanes) and warpgroup (128 threads) collectives, as barriers: a thread that
//   arrives waits until its whole group has (the barriers are counted, not told apart by call site).
// - __shfl_xor_sync, mma.sync.m16n8k16 (BF16 in, float32 accumulation) and wgmma.m64nNk16 (A from registers or a
//   shared-memory descriptor, B from a descriptor) with the register layouts of the PTX ISA; products are
//   summed in float32 in k order (the hardware's order may differ in the last bits).
// - wgmma is asynchronous as on the GPU: its operands are read at issue, its result is added to the accumulator
//   registers only when wgmma.wait_group retires its group, so registers read before the wait hold old values.
//   Its operands (this thread's A registers; the shared memory behind the descriptors, checked by the warpgroup's
//   first thread) must not change before that wait: the GPU may read them any time until then.
//   A product issued without a wgmma.fence since the last wait, a wait with products not committed, and a thread
//   that ends with products in flight are errors.
// - wgmma descriptors are decoded as the hardware reads them (start address, stride byte offset between 8-row
//   groups, 128-byte rows, the 128-byte swizzle applied to the address: bits 4-6 ^= bits 7-9); only the K-major
//   128-byte-swizzle form the kernels use is accepted, anything else fails the test.
// - cp.async: a copy lands either at issue or only when cp.async.wait_group retires its group (the earliest and
//   the latest moments the GPU allows; the launch says which), so both a read before the wait and an overwrite
//   of data another warp still reads show; a thread that ends with copies in flight is an error. Proxy fences
//   are no-ops. Shared memory is filled with 0xFF (BF16 NaN) before each block, and, under AddressSanitizer,
//   everything past the bytes the launch asked for is poisoned.
// - Scheduling: always the first runnable thread, counting from the first warp or from the last (the launch says
//   which), so one end of the block runs ahead until a barrier stops it.
// - Static shared arrays (K5_STATIC_SHARED, src/backends/cuda/static_shared.cuh) are function-local statics, so all
//   of a block's fibers see one array; unlike the dynamic shared memory they are not filled before each block.
// Not emulated: timing, bank conflicts, register limits.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <type_traits>

namespace k5::emulation {

struct Dim3 {
  constexpr Dim3(unsigned x = 1, unsigned y = 1, unsigned z = 1) : x(x), y(y), z(z) {}
  unsigned x, y, z;
};

const Dim3& thread_index();
const Dim3& block_index();
const Dim3& block_dim();
const Dim3& grid_dim();

void sync_threads();
float shuffle_xor(float value, int lane_mask);
double shuffle_xor(double value, int lane_mask);
size_t shared_offset(const void* pointer);  // __cvta_generic_to_shared

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 d, a, b, d (a[4], b[2] BF16 pairs; d[4]).
void mma_m16n8k16_bf16(float* d, const uint32_t* a, const uint32_t* b);
// wgmma.mma_async m64nNk16 f32.bf16.bf16 with scale-d 1 and no transposes: d (N / 2 floats) += A x B, A from
// `a` (this thread's 4 registers) or, when `a` is null, from the descriptor `a_descriptor`; wgmma.fence,
// wgmma.commit_group, wgmma.wait_group.
void wgmma_m64k16_bf16(float* d, int n, const uint32_t* a, uint64_t a_descriptor, uint64_t b_descriptor);
// __syncwarp; the calling thread's lane; wmma.mma_sync m16n16k16 with float32 accumulation: d = a b + c, each pointer
// this lane's 8 elements of its 16 x 16 matrix (lane l holds elements 8l .. 8l + 7 in row-major order).
void sync_warp();
int lane_id();
void wmma_m16n16k16(float* d, const float* a, const float* b, const float* c);
void wgmma_fence();
void wgmma_commit();
void wgmma_wait(int pending_groups);
// cp.async 16 bytes (zeros when !valid) to a shared-memory offset; cp.async.commit_group; cp.async.wait_group.
void copy_16(uint32_t shared_address, const void* global, bool valid);
void commit_copies();
void wait_copies(int pending_groups);

enum class Schedule { first_warps_ahead, last_warps_ahead };
enum class CopyLanding { at_issue, at_wait };
struct LaunchOrder {
  Schedule schedule = Schedule::first_warps_ahead;
  CopyLanding copies = CopyLanding::at_wait;
};

// Runs kernel(args...) on a grid of blocks with `shared_bytes` of dynamic shared memory (k5::cuda::shared_memory).
void run_grid(Dim3 grid, Dim3 block, size_t shared_bytes, LaunchOrder order, const std::function<void()>& kernel);

template <typename... Params, typename... Args>
void launch(Dim3 grid, Dim3 block, size_t shared_bytes, LaunchOrder order, void (*kernel)(Params...),
            const Args&... args) {
  run_grid(grid, block, shared_bytes, order, [&] { kernel(args...); });
}

// A launch without dynamic shared memory, in the default order.
template <typename... Params, typename... Args>
void launch(Dim3 grid, Dim3 block, void (*kernel)(Params...), const Args&... args) {
  launch(grid, block, 0, LaunchOrder{}, kernel, args...);
}

}  // namespace k5::emulation

namespace k5::cuda {
// `extern __shared__ unsigned char shared_memory[]` in the kernels names this (1024-byte aligned).
constexpr size_t kEmulatedSharedBytes = 227 * 1024;
extern unsigned char shared_memory[kEmulatedSharedBytes];
}  // namespace k5::cuda

// ---- The CUDA vocabulary the kernels are written in -----------------------------------------------------------
#define K5_CUDA_EMULATION 1
// Internal linkage: a CUDA build's library holds host launch stubs under the kernels' names, which must not stand in
// for these CPU versions at link time (and several test files include the same kernels).
#define __global__ static inline
// A block's threads are fibers of one host thread, so a function-local static is what they share.
#define K5_STATIC_SHARED static
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define threadIdx (::k5::emulation::thread_index())
#define blockIdx (::k5::emulation::block_index())
#define blockDim (::k5::emulation::block_dim())
#define gridDim (::k5::emulation::grid_dim())

inline void __syncthreads() { k5::emulation::sync_threads(); }
inline float __shfl_xor_sync(unsigned, float value, int lane_mask) {
  return k5::emulation::shuffle_xor(value, lane_mask);
}
inline double __shfl_xor_sync(unsigned, double value, int lane_mask) {
  return k5::emulation::shuffle_xor(value, lane_mask);
}
inline unsigned __float_as_uint(float value) { return __builtin_bit_cast(unsigned, value); }
inline float __uint_as_float(unsigned value) { return __builtin_bit_cast(float, value); }
using dim3 = k5::emulation::Dim3;
inline size_t __cvta_generic_to_shared(const void* pointer) { return k5::emulation::shared_offset(pointer); }
inline void __syncwarp(unsigned = 0xffffffffu) { k5::emulation::sync_warp(); }
[[noreturn]] inline void __trap() { std::abort(); }
// Blocks run one at a time and fibers only switch at barriers, so a plain add is atomic.
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
  const unsigned long long old = *address;
  *address += value;
  return old;
}
// Float32 products and sums, not contracted into FMAs where the test is compiled with -ffp-contract=off.
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }

template <typename T>
T min(T a, T b) {
  return b < a ? b : a;
}
template <typename T>
T max(T a, T b) {
  return a < b ? b : a;
}

struct uint4 {
  unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

struct __nv_bfloat16 {
  uint16_t bits;
};
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
// Round to nearest even (NaN kept quiet), as the GPU's cvt.rn.bf16x2.f32.
inline __nv_bfloat16 emulated_bf16_rn(float value) {
  uint32_t word;
  __builtin_memcpy(&word, &value, 4);
  if ((word & 0x7fffffffu) > 0x7f800000u) return {uint16_t((word >> 16) | 0x40u)};
  word += 0x7fffu + ((word >> 16) & 1u);
  return {uint16_t(word >> 16)};
}
inline __nv_bfloat16 __float2bfloat16_rn(float value) { return emulated_bf16_rn(value); }
inline __nv_bfloat162 __floats2bfloat162_rn(float low, float high) {
  return {emulated_bf16_rn(low), emulated_bf16_rn(high)};
}

// WMMA (nvcuda::wmma) for 16 x 16 x 16 BF16 products with float32 accumulators. The hardware's fragment layout is
// unspecified, so kernels may only load, store, fill and multiply whole fragments; here lane l holds elements
// 8l .. 8l + 7 of the matrix in row-major order. Loads and stores check the alignment and leading dimensions the
// CUDA documentation requires (256-bit pointers; ldm a multiple of 8 BF16 values or 4 floats).
namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the emulator has the m16n16k16 shape only");
  static constexpr int num_elements = 8;
  float x[num_elements];
};

namespace detail {
inline void check_operand(const void* pointer, unsigned ld, unsigned ld_multiple) {
  if (reinterpret_cast<uintptr_t>(pointer) % 32 != 0 || ld % ld_multiple != 0) {
    std::fprintf(stderr, "warp emulator: a WMMA load or store with a misaligned pointer or leading dimension\n");
    std::abort();
  }
}
// Element e of this lane: (row, column) of its 16 x 16 matrix, read from or written to `ld`-apart rows or columns.
inline size_t offset(int e, unsigned ld, bool row_major) {
  const int index = 8 * k5::emulation::lane_id() + e, row = index / 16, column = index % 16;
  return row_major ? size_t(row) * ld + column : size_t(column) * ld + row;
}
}  // namespace detail

template <typename Use, typename Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, __nv_bfloat16, Layout>& f, const __nv_bfloat16* p, unsigned ld) {
  detail::check_operand(p, ld, 8);
  k5::emulation::sync_warp();
  for (int e = 0; e < 8; ++e) {
    const uint32_t word = uint32_t(p[detail::offset(e, ld, std::is_same_v<Layout, row_major>)].bits) << 16;
    __builtin_memcpy(&f.x[e], &word, 4);
  }
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ld,
                             layout_t layout) {
  detail::check_operand(p, ld, 4);
  k5::emulation::sync_warp();
  for (int e = 0; e < 8; ++e) f.x[e] = p[detail::offset(e, ld, layout == mem_row_major)];
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ld,
                              layout_t layout) {
  detail::check_operand(p, ld, 4);
  for (int e = 0; e < 8; ++e) p[detail::offset(e, ld, layout == mem_row_major)] = f.x[e];
  k5::emulation::sync_warp();
}
template <typename Use, typename T, typename Layout>
void fill_fragment(fragment<Use, 16, 16, 16, T, Layout>& f, float value) {
  for (float& element : f.x) element = value;
}
template <typename LayoutA, typename LayoutB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d,
              const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LayoutA>& a,
              const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LayoutB>& b,
              const fragment<accumulator, 16, 16, 16, float>& c) {
  k5::emulation::wmma_m16n16k16(d.x, a.x, b.x, c.x);
}

}  // namespace nvcuda::wmma
