// Dense and block-sparse (NABLA) attention on the GPU (the CUDA side of src/ops/attention.h): a
// flash-attention style reference kernel on CUDA cores (float32, and BF16 roundings in Precision::bf16), a WMMA
// tensor-core version of it for Precision::bf16 (attention_wmma.cuh), and the choice between them and the
// register-tiled tensor-core kernels of attention_mma.cuh and attention_wgmma.cuh. Dense and block-sparse share
// every kernel.
//
// Tiling (flash_attention_64x64, in attention_simt.cuh so that the CPU tests can run it): a thread block owns 64
// query rows of one query head (grid: x = query tiles, y = heads) and streams the keys through shared memory 64 at
// a time, keeping a running max and sum per row (online softmax), so no Lq x Lk matrix ever exists. Per key tile:
//   1. load K[64, D] into shared memory; S[64, 64] = scale * Q K^T, each of the 256 threads (a 16 x 16 grid)
//      computing a 4 x 4 patch of S (rows ty + 16i, keys tx + 16j), masked scores set to -inf;
//   2. four threads per query row: tile max, rescale factor exp(old max - new max), P = exp(S - new max) in
//      place of S, running sum; meanwhile V[64, D] is loaded into the buffer K used;
//   3. O[64, D] = O * rescale + P V, each thread accumulating a 4 x (D/16) patch of O in registers (rows
//      ty + 16i, columns tx + 16j).
// At the end O / sum is written (0 for a row that saw no visible key, as the CPU op does).
// Shared memory: Q [64, D+1], K/V [64, D+1], S/P [64, 65], one float per row: 81 KiB for D = 128, 49 KiB for
// D = 64 (both above the 48 KiB default, hence cudaFuncSetAttribute). The +1 padding keeps the column reads
// of step 1 (16 threads, 16 different key rows) on 16 different banks.
// Head dims: any D from 1 to 128 (columns past D are guarded); the models use 64 and 128.
//
// Numerics follow src/backends/cpu/attention.cpp: s = scale * (q . k), exp(s - running max), sum of the
// unrounded exponentials, O accumulated in float32 and divided by the sum at the end. In Precision::bf16
// q, k and v are rounded to BF16 when they are staged in shared memory and the probabilities are rounded to
// BF16 before P V, exactly the roundings the CPU op's BF16 GEMMs make (a product of two BF16 values is exact
// in float32, so the products agree too); only the summation order and the points where the running max
// moves (every 64 keys here, every 512 on the CPU) differ.
//
// Block-sparse: key tiles that no kept (query block, key block) pair touches are skipped before anything is
// loaded. When the block size is a multiple of 64 (the models use 64) every tile lies inside one block, so
// exactly the masked blocks are skipped; other block sizes also get a per-score test of the mask. A query
// block whose mask row is all zero sees no key and gets zeros, as on the CPU.
//
// Which kernel (choose_kernel): Precision::fp32 -> this reference kernel; Precision::bf16 -> for the models' head
// dims 64 and 128 the Hopper wgmma kernel on an sm_90 GPU (attention_wgmma.cuh), else the register-tiled mma.sync
// kernel (attention_mma.cuh); other head dims: the WMMA tensor-core kernel when D % 16 == 0, else this kernel with
// its BF16 roundings. K5_CUDA_ATTENTION=wgmma|wgmma-serial|mma|wmma|simt forces one (tests and benchmarks compare
// them).
#include <cuda_bf16.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "backends/cuda/attention_mma.cuh"
#include "backends/cuda/attention_simt.cuh"
#include "backends/cuda/attention_tiles.cuh"
#include "backends/cuda/attention_wmma.cuh"
#include "backends/cuda/bf16.cuh"
#include "backends/cuda/check.h"
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"
#include "ops/attention.h"

namespace k5::cuda {

namespace {

constexpr int kMaxHeadDim = 128;
constexpr int64_t kMaxGridY = 65535;

template <int kDimSlots, bool kBf16>
void launch_flash_attention(const AttentionParams& p) {
  const auto kernel = flash_attention_64x64<kDimSlots, kBf16>;
  const size_t bytes = simt_shared_bytes(p.dim);
  K5_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  const dim3 grid(unsigned((p.q_tokens + kQueryTile - 1) / kQueryTile), unsigned(p.heads));
  kernel<<<grid, kSimtThreads, bytes>>>(p);
  K5_CUDA_CHECK_LAUNCH("flash_attention_64x64");
}

void launch_flash_attention_bf16_wmma(const AttentionParams& p) {
  const size_t bytes = wmma_layout(p.dim).bytes;
  K5_CUDA_CHECK(
      cudaFuncSetAttribute(flash_attention_bf16_wmma_64x64, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  const dim3 grid(unsigned((p.q_tokens + kQueryTile - 1) / kQueryTile), unsigned(p.heads));
  flash_attention_bf16_wmma_64x64<<<grid, kWmmaThreads, bytes>>>(p);
  K5_CUDA_CHECK_LAUNCH("flash_attention_bf16_wmma_64x64");
}

// ---- Register-tiled tensor-core version (mma.sync): attention_mma.cuh -------------------------------------

template <int kDim, int kWarps>
void launch_flash_attention_bf16_mma(const AttentionParams& p) {
  const int kv_heads = p.heads / p.group;
  const ScratchBuffer q(size_t(p.q_tokens) * p.heads * kDim * 2), k(size_t(p.k_tokens) * kv_heads * kDim * 2),
      v(size_t(p.k_tokens) * kv_heads * kDim * 2);
  to_bf16_heads(p.q, p.q_tokens, p.heads, kDim, q.as<__nv_bfloat16>());
  to_bf16_heads(p.k, p.k_tokens, kv_heads, kDim, k.as<__nv_bfloat16>());
  to_bf16_heads(p.v, p.k_tokens, kv_heads, kDim, v.as<__nv_bfloat16>());
  const auto kernel = flash_attention_bf16_mma<kDim, kWarps>;
  const size_t bytes = mma_shared_bytes(kDim, kWarps);
  K5_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  const int64_t rows_per_block = 16 * kWarps;
  const dim3 grid(unsigned((p.q_tokens + rows_per_block - 1) / rows_per_block), unsigned(p.heads));
  kernel<<<grid, 32 * kWarps, bytes>>>(
      p, Bf16Operands{q.as<__nv_bfloat16>(), k.as<__nv_bfloat16>(), v.as<__nv_bfloat16>(), kv_heads});
  K5_CUDA_CHECK_LAUNCH("flash_attention_bf16_mma");
}

enum class AttentionKernel { simt, wmma, mma, wgmma, wgmma_serial };

// Which kernel runs a call (see the top of the file). In Precision::bf16,
// K5_CUDA_ATTENTION=wgmma|wgmma-serial|mma|wmma|simt forces one (benchmarks and tests compare them; read at every
// call); auto or unset picks the fastest that runs.
AttentionKernel choose_kernel(const AttentionParams& p, bool bf16) {
  if (!bf16) return AttentionKernel::simt;
  const bool mma_runs = (p.dim == 64 || p.dim == 128) && mma_shared_bytes(p.dim, 8) <= shared_memory_per_block();
  const bool wmma_runs = p.dim % 16 == 0 && wmma_layout(p.dim).bytes <= shared_memory_per_block();
  const char* forced = std::getenv("K5_CUDA_ATTENTION");
  const std::string choice = forced ? forced : "";
  if (choice.empty() || choice == "auto") {
    if (wgmma_attention_available(p.dim)) return AttentionKernel::wgmma;
    if (mma_runs) return AttentionKernel::mma;
    return wmma_runs ? AttentionKernel::wmma : AttentionKernel::simt;
  }
  const auto refuse = [&](const char* needs) {
    fail("K5_CUDA_ATTENTION=", choice, ": that kernel needs ", needs, " (head dim ", p.dim, ")");
  };
  if (choice == "wgmma" || choice == "wgmma-serial") {
    if (!wgmma_attention_available(p.dim)) refuse("head dim 64 or 128, an sm_90 GPU and a build for sm_90a");
    return choice == "wgmma" ? AttentionKernel::wgmma : AttentionKernel::wgmma_serial;
  }
  if (choice == "mma") {
    if (!mma_runs) refuse("head dim 64 or 128");
    return AttentionKernel::mma;
  }
  if (choice == "wmma") {
    if (!wmma_runs) refuse("a head dim that is a multiple of 16");
    return AttentionKernel::wmma;
  }
  if (choice == "simt") return AttentionKernel::simt;
  fail("K5_CUDA_ATTENTION=", choice, " is not one of auto, wgmma, wgmma-serial, mma, wmma, simt");
}

void launch(Context& ctx, const AttentionParams& p) {
  if (p.q_tokens == 0 || p.heads == 0 || p.dim == 0) return;
  const bool bf16 = ctx.precision() == Precision::bf16;
  switch (choose_kernel(p, bf16)) {
    case AttentionKernel::wgmma:
      return launch_flash_attention_bf16_wgmma(p, true);
    case AttentionKernel::wgmma_serial:
      return launch_flash_attention_bf16_wgmma(p, false);
    case AttentionKernel::mma:
      if (p.block_mask)  // 64-row blocks: a key tile is skipped exactly when its 64 x 64 block is masked
        return p.dim == 64 ? launch_flash_attention_bf16_mma<64, 4>(p) : launch_flash_attention_bf16_mma<128, 4>(p);
      return p.dim == 64 ? launch_flash_attention_bf16_mma<64, 8>(p) : launch_flash_attention_bf16_mma<128, 8>(p);
    case AttentionKernel::wmma:
      return launch_flash_attention_bf16_wmma(p);
    case AttentionKernel::simt:
      if (p.dim <= 64) return bf16 ? launch_flash_attention<4, true>(p) : launch_flash_attention<4, false>(p);
      return bf16 ? launch_flash_attention<8, true>(p) : launch_flash_attention<8, false>(p);
  }
}

HeadView head_view(const Tensor& t, const char* op, const char* what) {
  K5_CHECK(t.dtype() == DType::F32 && t.dim() == 3, op, ": ", what, " must be F32 [L, H, D], got ", t.describe());
  K5_CHECK(t.stride(2) == 1, op, ": ", what, " must have a contiguous last dim, got ", t.describe());
  K5_CHECK(t.device() == Device::CUDA, op, ": ", what, " ", t.describe(), " is on the host, the others on the GPU");
  return {t.data<float>(), t.stride(0), t.stride(1)};
}

// The checks both ops share (the CPU op's, plus the GPU kernel's limits).
AttentionParams common_params(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
                              float scale) {
  AttentionParams p{};
  p.q = head_view(q, op, "q");
  p.k = head_view(k, op, "k");
  p.v = head_view(v, op, "v");
  const int64_t dim = q.size(2), heads = q.size(1);
  K5_CHECK(k.size(2) == dim && v.size(2) == dim && k.size(0) == v.size(0) && k.size(1) == v.size(1) && k.size(1) > 0 &&
               heads % k.size(1) == 0,
           op, ": incompatible q ", q.describe(), ", k ", k.describe(), ", v ", v.describe());
  K5_CHECK(out.dtype() == DType::F32 && out.is_contiguous() && out.device() == Device::CUDA &&
               out.shape() == Shape({q.size(0), heads, dim}),
           op, ": output must be contiguous F32 [", q.size(0), ", ", heads, ", ", dim, "] on the GPU, got ",
           out.describe());
  K5_CHECK(dim <= kMaxHeadDim, op, ": head dim ", dim, " is above the CUDA kernel's limit of ", kMaxHeadDim);
  K5_CHECK(heads <= kMaxGridY, op, ": ", heads, " heads is more than one launch takes (", kMaxGridY, ")");
  K5_CHECK((q.size(0) + kQueryTile - 1) / kQueryTile < (int64_t(1) << 31), op, ": ", q.size(0),
           " query tokens is more than one launch takes");
  p.out = out.data<float>();
  p.q_tokens = q.size(0);
  p.k_tokens = k.size(0);
  p.heads = int(heads);
  p.group = int(heads / k.size(1));
  p.dim = int(dim);
  p.scale = scale > 0 ? scale : 1.0f / std::sqrt(float(dim));
  return p;
}

const uint8_t* byte_mask(const Tensor& mask, const char* op, const char* what, const Shape& shape) {
  K5_CHECK((mask.dtype() == DType::U8 || mask.dtype() == DType::BOOL) && mask.is_contiguous() &&
               mask.numel() == shape_numel(shape),
           op, ": ", what, " must be U8/BOOL ", shape_string(shape), ", got ", mask.describe());
  K5_CHECK(mask.device() == Device::CUDA, op, ": ", what, " ", mask.describe(), " is on the host, q/k/v on the GPU");
  return mask.data<uint8_t>();
}

}  // namespace

void to_bf16_heads(const HeadView& source, int64_t tokens, int heads, int dim, __nv_bfloat16* out) {
  const int64_t count = tokens * heads * dim;
  if (count == 0) return;
  to_bf16_heads_kernel<<<grid_stride_blocks(count, 256), 256>>>(source, tokens, heads, dim, out);
  K5_CUDA_CHECK_LAUNCH("to_bf16_heads_kernel");
}

void attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
               const ops::AttentionOptions& options) {
  AttentionParams p = common_params("attention", q, k, v, out, options.scale);
  p.causal = options.causal;
  p.causal_offset = p.k_tokens - p.q_tokens;
  if (options.key_mask) p.key_mask = byte_mask(*options.key_mask, "attention", "key mask", {p.k_tokens});
  launch(ctx, p);
}

void block_sparse_attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& block_mask,
                            int block_size, Tensor& out, float scale) {
  const char* op = "block_sparse_attention";
  AttentionParams p = common_params(op, q, k, v, out, scale);
  K5_CHECK(k.size(1) == q.size(1), op, ": q ", q.describe(), " and k ", k.describe(), " must have the same heads");
  K5_CHECK(block_size > 0, op, ": block size ", block_size, " must be positive");
  p.block_size = block_size;
  p.query_blocks = (p.q_tokens + block_size - 1) / block_size;
  p.key_blocks = (p.k_tokens + block_size - 1) / block_size;
  p.block_mask = byte_mask(block_mask, op, "block mask", {int64_t(p.heads), p.query_blocks, p.key_blocks});
  K5_CHECK(block_mask.shape() == Shape({int64_t(p.heads), p.query_blocks, p.key_blocks}), op, ": block mask must be [",
           p.heads, ", ", p.query_blocks, ", ", p.key_blocks, "], got ", block_mask.describe());
  p.mask_per_score = block_size % kQueryTile != 0 || block_size % kKeyTile != 0;
  launch(ctx, p);
}

}  // namespace k5::cuda
