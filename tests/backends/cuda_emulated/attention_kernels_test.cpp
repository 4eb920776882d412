// The CUDA backend's attention kernels (the float32 reference kernel, in both of its modes, the WMMA kernel, and the
// register-tiled tensor-core kernels on mma.sync and Hopper wgmma) and the BF16 copies of q, k, v they read run on the
// CPU under the warp emulator, against the CPU attention op: CI has no GPU, and this runs the kernels' own device code
// (indexing, tiling, masks, double buffering, swizzled layouts, online softmax) every time. What the emulator cannot
// show (the hardware's reading of the PTX, timing) the GPU tests (tests/backends/cuda/attention_test.cpp) check.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backends/cuda/launchers.h"
#include "backends/cuda_emulated/emulated_kernels.h"
#include "core/context.h"
#include "core/dtype.h"
#include "ops/attention.h"
#include "support/compare.h"
#include "support/random.h"

namespace k5::test {
namespace {

// As the GPU tests: both BF16 results land ~3e-3 from the float32 one; between the two BF16 results only where
// the probabilities are rounded (against a running max that moves every 64 keys here, every 512 on the CPU).
constexpr double kBf16VsF32Tolerance = 1e-2;
constexpr double kBf16VsCpuBf16Tolerance = 4e-3;

struct Case {
  int64_t q_tokens, k_tokens, q_heads, kv_heads, dim;
  bool causal = false, key_mask = false, block_sparse = false;
  int block_size = 64;  // NABLA's; others than 64 take the per-score mask test
  float q_spread = 1.0f;
};

// The inputs of one case, with the BF16 copies the kernels read (what to_bf16_heads and the transposing copy make
// on the GPU).
struct Inputs {
  Tensor q, k, v, key_mask, block_mask, q_bf16, k_bf16, v_bf16;
  std::vector<uint16_t> v_transposed;
  int64_t padded_keys = 0;
};

Inputs make_inputs(const Case& c, uint32_t seed) {
  Inputs in;
  in.q = random_tensor({c.q_tokens, c.q_heads, c.dim}, seed, c.q_spread);
  in.k = random_tensor({c.k_tokens, c.kv_heads, c.dim}, seed + 1);
  in.v = random_tensor({c.k_tokens, c.kv_heads, c.dim}, seed + 2);
  in.q_bf16 = in.q.to(DType::BF16);
  in.k_bf16 = in.k.to(DType::BF16);
  in.v_bf16 = in.v.to(DType::BF16);
  in.padded_keys = (c.k_tokens + 63) / 64 * 64;
  in.v_transposed.assign(size_t(c.kv_heads * c.dim * in.padded_keys), 0);
  for (int64_t token = 0; token < c.k_tokens; ++token)
    for (int64_t h = 0; h < c.kv_heads; ++h)
      for (int64_t d = 0; d < c.dim; ++d)
        in.v_transposed[size_t((h * c.dim + d) * in.padded_keys + token)] =
            f32_to_bf16(in.v.data<float>()[(token * c.kv_heads + h) * c.dim + d]);
  in.key_mask = Tensor::empty(DType::U8, {c.k_tokens});
  for (int64_t j = 0; j < c.k_tokens; ++j)
    in.key_mask.data<uint8_t>()[j] = j < c.k_tokens - c.k_tokens / 5 && j % 7 != 3;
  if (c.block_sparse) {
    // The diagonal and ~40% of the other blocks; query block 1 of the last head sees nothing.
    const int64_t blocks = (c.q_tokens + c.block_size - 1) / c.block_size;
    std::mt19937 generator(seed + 3);
    std::bernoulli_distribution keep(0.4);
    in.block_mask = Tensor::empty(DType::U8, {c.q_heads, blocks, blocks});
    for (int64_t h = 0; h < c.q_heads; ++h)
      for (int64_t i = 0; i < blocks; ++i)
        for (int64_t j = 0; j < blocks; ++j)
          in.block_mask.data<uint8_t>()[(h * blocks + i) * blocks + j] =
              (i == j || keep(generator)) && !(h == c.q_heads - 1 && i == 1);
  }
  return in;
}

Tensor cpu_attention(const Case& c, const Inputs& in, Precision precision) {
  Context ctx({.threads = 2, .precision = precision, .log_level = LogLevel::quiet});
  Tensor out = Tensor::empty(DType::F32, {c.q_tokens, c.q_heads, c.dim});
  if (c.block_sparse)
    ops::block_sparse_attention(ctx, in.q, in.k, in.v, in.block_mask, c.block_size, out);
  else
    ops::attention(ctx, in.q, in.k, in.v, out, {.causal = c.causal, .key_mask = c.key_mask ? &in.key_mask : nullptr});
  return out;
}

// What attention.cu's common_params and the two ops fill in.
cuda::AttentionParams params(const Case& c, const Inputs& in, Tensor& out) {
  cuda::AttentionParams p{};
  p.q = {in.q.data<float>(), c.q_heads * c.dim, c.dim};
  p.k = {in.k.data<float>(), c.kv_heads * c.dim, c.dim};
  p.v = {in.v.data<float>(), c.kv_heads * c.dim, c.dim};
  p.out = out.data<float>();
  p.q_tokens = c.q_tokens;
  p.k_tokens = c.k_tokens;
  p.heads = int(c.q_heads);
  p.group = int(c.q_heads / c.kv_heads);
  p.dim = int(c.dim);
  p.scale = 1.0f / std::sqrt(float(c.dim));
  p.causal = c.causal;
  p.causal_offset = c.k_tokens - c.q_tokens;
  p.key_mask = c.key_mask ? in.key_mask.data<uint8_t>() : nullptr;
  if (c.block_sparse) {
    p.block_mask = in.block_mask.data<uint8_t>();
    p.block_size = c.block_size;
    p.query_blocks = p.key_blocks = (c.q_tokens + c.block_size - 1) / c.block_size;
    p.mask_per_score = c.block_size % cuda::kKeyTile != 0;
  }
  return p;
}

const __nv_bfloat16* bf16(const Tensor& t) { return reinterpret_cast<const __nv_bfloat16*>(t.data<uint16_t>()); }

template <int kDim>
Tensor run_mma(const Case& c, const Inputs& in, emulation::LaunchOrder order) {
  Tensor out = Tensor::empty(DType::F32, {c.q_tokens, c.q_heads, c.dim});
  constexpr int kDenseWarps = 8, kSparseWarps = 4;  // as attention.cu launches them
  const int warps = c.block_sparse ? kSparseWarps : kDenseWarps;
  const emulation::Dim3 grid{unsigned((c.q_tokens + 16 * warps - 1) / (16 * warps)), unsigned(c.q_heads), 1};
  const cuda::Bf16Operands operands{bf16(in.q_bf16), bf16(in.k_bf16), bf16(in.v_bf16), int(c.kv_heads)};
  const cuda::AttentionParams p = params(c, in, out);
  if (c.block_sparse)
    emulation::launch(grid, {32 * kSparseWarps, 1, 1}, cuda::mma_shared_bytes(kDim, kSparseWarps), order,
                      cuda::flash_attention_bf16_mma<kDim, kSparseWarps>, p, operands);
  else
    emulation::launch(grid, {32 * kDenseWarps, 1, 1}, cuda::mma_shared_bytes(kDim, kDenseWarps), order,
                      cuda::flash_attention_bf16_mma<kDim, kDenseWarps>, p, operands);
  return out;
}

template <int kDim, bool kOverlap>
Tensor run_wgmma(const Case& c, const Inputs& in, emulation::LaunchOrder order) {
  Tensor out = Tensor::empty(DType::F32, {c.q_tokens, c.q_heads, c.dim});
  const cuda::WgmmaOperands operands{bf16(in.q_bf16), bf16(in.k_bf16),
                                     reinterpret_cast<const __nv_bfloat16*>(in.v_transposed.data()), int(c.kv_heads),
                                     in.padded_keys};
  const cuda::AttentionParams p = params(c, in, out);
  // As attention_wgmma.cu launches them.
  const int warpgroups = cuda::wgmma_warpgroups(kDim, c.block_sparse, kOverlap);
  const emulation::Dim3 grid{unsigned((c.q_tokens + 64 * warpgroups - 1) / (64 * warpgroups)), unsigned(c.q_heads)};
  const size_t bytes = cuda::wgmma_shared_bytes(kDim, warpgroups, kOverlap ? 3 : 2);
  const auto launch = [&](auto kernel) {
    emulation::launch(grid, {128u * warpgroups}, bytes, order, kernel, p, operands);
  };
  if (warpgroups == 1)
    launch(cuda::flash_attention_bf16_wgmma<kDim, 1, kOverlap>);
  else if (warpgroups == 2)
    launch(cuda::flash_attention_bf16_wgmma<kDim, 2, kOverlap>);
  else
    launch(cuda::flash_attention_bf16_wgmma<kDim, 3, kOverlap>);
  return out;
}

// The CUDA-core kernel: kDimSlots output columns per thread, as attention.cu picks them (4 up to D = 64, else 8).
template <bool kBf16>
Tensor run_simt(const Case& c, const Inputs& in, emulation::LaunchOrder order) {
  Tensor out = Tensor::empty(DType::F32, {c.q_tokens, c.q_heads, c.dim});
  const emulation::Dim3 grid{unsigned((c.q_tokens + cuda::kQueryTile - 1) / cuda::kQueryTile), unsigned(c.q_heads)};
  const cuda::AttentionParams p = params(c, in, out);
  const size_t bytes = cuda::simt_shared_bytes(int(c.dim));
  if (c.dim <= 64)
    emulation::launch(grid, {cuda::kSimtThreads}, bytes, order, cuda::flash_attention_64x64<4, kBf16>, p);
  else
    emulation::launch(grid, {cuda::kSimtThreads}, bytes, order, cuda::flash_attention_64x64<8, kBf16>, p);
  return out;
}

// The WMMA kernel: head dims that are multiples of 16.
Tensor run_wmma(const Case& c, const Inputs& in, emulation::LaunchOrder order) {
  Tensor out = Tensor::empty(DType::F32, {c.q_tokens, c.q_heads, c.dim});
  const emulation::Dim3 grid{unsigned((c.q_tokens + cuda::kQueryTile - 1) / cuda::kQueryTile), unsigned(c.q_heads)};
  emulation::launch(grid, {cuda::kWmmaThreads}, cuda::wmma_layout(int(c.dim)).bytes, order,
                    cuda::flash_attention_bf16_wmma_64x64, params(c, in, out));
  return out;
}

void check(const Case& c, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << "Lq " << c.q_tokens << " Lk " << c.k_tokens << " Hq " << c.q_heads << " Hkv "
                                    << c.kv_heads << " D " << c.dim << " causal " << c.causal << " key_mask "
                                    << c.key_mask << " NABLA " << c.block_sparse << " block " << c.block_size);
  const Inputs in = make_inputs(c, seed);
  const Tensor f32 = cpu_attention(c, in, Precision::fp32), bf16_reference = cpu_attention(c, in, Precision::bf16);
  enum class Tiled { mma, wgmma_serial, wgmma_overlapped };
  const auto run = [&](Tiled kernel, emulation::LaunchOrder order) {
    if (c.dim == 64) {
      if (kernel == Tiled::mma) return run_mma<64>(c, in, order);
      return kernel == Tiled::wgmma_serial ? run_wgmma<64, false>(c, in, order) : run_wgmma<64, true>(c, in, order);
    }
    if (kernel == Tiled::mma) return run_mma<128>(c, in, order);
    return kernel == Tiled::wgmma_serial ? run_wgmma<128, false>(c, in, order) : run_wgmma<128, true>(c, in, order);
  };
  const auto name = [](Tiled kernel) {
    return kernel == Tiled::mma            ? "mma.sync kernel, "
           : kernel == Tiled::wgmma_serial ? "serial wgmma kernel, "
                                           : "overlapped wgmma kernel, ";
  };
  using emulation::CopyLanding, emulation::LaunchOrder, emulation::Schedule;
  for (const Schedule schedule : {Schedule::first_warps_ahead, Schedule::last_warps_ahead}) {
    SCOPED_TRACE(schedule == Schedule::first_warps_ahead ? "CUDA-core kernel, first warps ahead"
                                                         : "CUDA-core kernel, last warps ahead");
    EXPECT_LE(relative_l2(run_simt<false>(c, in, {schedule}), f32), 1e-5);
    EXPECT_LE(relative_l2(run_simt<true>(c, in, {schedule}), bf16_reference), kBf16VsCpuBf16Tolerance);
    if (c.dim % 16 == 0) {
      EXPECT_LE(relative_l2(run_wmma(c, in, {schedule}), bf16_reference), kBf16VsCpuBf16Tolerance) << "WMMA kernel";
    }
  }
  if (c.dim != 64 && c.dim != 128) return;  // the register-tiled kernels' head dims
  for (const Tiled kernel : {Tiled::mma, Tiled::wgmma_serial, Tiled::wgmma_overlapped})
    for (const LaunchOrder order : {LaunchOrder{Schedule::first_warps_ahead, CopyLanding::at_wait},
                                    LaunchOrder{Schedule::last_warps_ahead, CopyLanding::at_wait},
                                    LaunchOrder{Schedule::first_warps_ahead, CopyLanding::at_issue},
                                    LaunchOrder{Schedule::last_warps_ahead, CopyLanding::at_issue}}) {
      SCOPED_TRACE(::testing::Message() << name(kernel)
                                        << (order.schedule == Schedule::first_warps_ahead ? "first" : "last")
                                        << " warps ahead, copies land at "
                                        << (order.copies == CopyLanding::at_issue ? "issue" : "wait"));
      const Tensor out = run(kernel, order);
      EXPECT_LE(relative_l2(out, f32), kBf16VsF32Tolerance);
      EXPECT_LE(relative_l2(out, bf16_reference), kBf16VsCpuBf16Tolerance);
      // Rows that see no key are zeros, as on the CPU: the first Lq - Lk causal queries, NABLA's empty block row.
      for (int64_t token = 0; token < c.q_tokens; ++token)
        for (int64_t h = 0; h < c.q_heads; ++h) {
          const bool sees_nothing = (c.causal && token < c.q_tokens - c.k_tokens) ||
                                    (c.block_sparse && h == c.q_heads - 1 && token / c.block_size == 1);
          if (!sees_nothing) continue;
          for (int64_t d = 0; d < c.dim; ++d)
            ASSERT_EQ(out.data<float>()[(token * c.q_heads + h) * c.dim + d], 0.0f) << "token " << token;
        }
    }
}

TEST(EmulatedCudaAttention, DenseGroupedHeadsAndKeyMask) {
  check({.q_tokens = 150, .k_tokens = 200, .q_heads = 2, .kv_heads = 1, .dim = 64, .key_mask = true}, 10);
  check({.q_tokens = 70, .k_tokens = 130, .q_heads = 2, .kv_heads = 2, .dim = 128, .q_spread = 2.0f}, 20);
}

// Dense head dim 64 beyond one block of the 3-warpgroup wgmma kernel (192 rows), every key visible (the unmasked
// softmax path), and a single key tile (the overlapped loop's prologue and last P V only).
TEST(EmulatedCudaAttention, SeveralBlocksAndOneKeyTile) {
  check({.q_tokens = 300, .k_tokens = 330, .q_heads = 1, .kv_heads = 1, .dim = 64}, 110);
  check({.q_tokens = 90, .k_tokens = 50, .q_heads = 1, .kv_heads = 1, .dim = 128}, 120);
}

TEST(EmulatedCudaAttention, Causal) {
  check({.q_tokens = 130, .k_tokens = 150, .q_heads = 2, .kv_heads = 2, .dim = 128, .causal = true}, 30);
  // Lq > Lk: the first 53 queries see no key; then the whole first 192-row block of the 3-warpgroup kernel sees none,
  // and the rest one key tile.
  check({.q_tokens = 130, .k_tokens = 77, .q_heads = 1, .kv_heads = 1, .dim = 64, .causal = true}, 40);
  check({.q_tokens = 260, .k_tokens = 40, .q_heads = 1, .kv_heads = 1, .dim = 64, .causal = true}, 45);
}

TEST(EmulatedCudaAttention, BlockSparse) {
  check(
      {.q_tokens = 64 * 4 + 20, .k_tokens = 64 * 4 + 20, .q_heads = 2, .kv_heads = 2, .dim = 64, .block_sparse = true},
      50);
  check({.q_tokens = 64 * 3 + 5, .k_tokens = 64 * 3 + 5, .q_heads = 2, .kv_heads = 2, .dim = 128, .block_sparse = true},
        60);
  // Blocks of 48 straddle the 64-key tiles: tiles are skipped only when no kept block touches them, and each score
  // is tested against the mask.
  check({.q_tokens = 200,
         .k_tokens = 200,
         .q_heads = 2,
         .kv_heads = 2,
         .dim = 64,
         .block_sparse = true,
         .block_size = 48},
        70);
}

// Head dims the models do not use: the CUDA-core kernel takes any up to 128, the WMMA kernel multiples of 16.
TEST(EmulatedCudaAttention, OtherHeadDims) {
  check({.q_tokens = 100, .k_tokens = 90, .q_heads = 2, .kv_heads = 1, .dim = 48, .causal = true, .key_mask = true},
        90);
  check({.q_tokens = 70, .k_tokens = 70, .q_heads = 1, .kv_heads = 1, .dim = 40}, 100);
}

// The copies the tensor-core kernels read, made by the GPU's kernels from strided views (q, k, v as slices of one
// fused projection): exactly the CPU's rounding, v also transposed per head and zero-padded to whole key tiles.
TEST(EmulatedCudaAttention, Bf16CopiesOfStridedViews) {
  const int64_t tokens = 70, heads = 3, dim = 64, padded_keys = 128;
  const Tensor qkv = random_tensor({tokens, 3, heads, dim}, 80);
  const Tensor v = qkv.select(1, 2);
  const cuda::HeadView source{v.data<float>(), v.stride(0), v.stride(1)};
  const Tensor expected = v.contiguous().to(DType::BF16);

  std::vector<uint16_t> copy(size_t(tokens * heads * dim), 0);
  for (const unsigned blocks : {cuda::grid_stride_blocks(tokens * heads * dim, 256), 3u}) {
    emulation::launch({blocks}, {256}, cuda::to_bf16_heads_kernel, source, tokens, int(heads), int(dim),
                      reinterpret_cast<__nv_bfloat16*>(copy.data()));
    EXPECT_EQ(std::memcmp(copy.data(), expected.data<uint16_t>(), copy.size() * 2), 0);
  }

  std::vector<uint16_t> transposed(size_t(heads * dim * padded_keys), 0xffff);
  emulation::launch({unsigned(padded_keys / 32), unsigned(dim / 32), unsigned(heads)}, {32, 8},
                    cuda::to_bf16_transposed_kernel, source, tokens, padded_keys, int(dim),
                    reinterpret_cast<__nv_bfloat16*>(transposed.data()));
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t d = 0; d < dim; ++d)
      for (int64_t token = 0; token < padded_keys; ++token)
        ASSERT_EQ(transposed[size_t((h * dim + d) * padded_keys + token)],
                  token < tokens ? expected.data<uint16_t>()[(token * heads + h) * dim + d] : 0)
            << "head " << h << " d " << d << " token " << token;
}

}  // namespace
}  // namespace k5::test
