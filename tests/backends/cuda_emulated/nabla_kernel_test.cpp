// The CUDA backend's NABLA block selection runs on the CPU under the warp emulator against the CPU op: both must keep
// exactly the same blocks (they do the same float32 arithmetic in the same order). On a GPU,
// CudaNabla.SelectsExactlyTheCpuBlocks and the NABLA DiT forward tests check it (tests/backends/cuda/).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backends/cuda_emulated/emulated_kernels.h"
#include "core/context.h"
#include "ops/attention.h"
#include "support/random.h"

namespace k5::test {
namespace {

struct Case {
  int64_t heads, blocks, dim;
  double P;
  unsigned threads;  // the GPU launches 256; fewer here keep the emulation fast and make threads loop
};

struct Selection {
  std::vector<uint8_t> mask;
  int64_t kept;
};

Selection run_emulated(const Case& c, const Tensor& q_pool, const Tensor& k_pool, const Tensor& sta,
                       emulation::Schedule schedule) {
  int padded = 1;
  while (padded < c.blocks) padded *= 2;
  Selection result{std::vector<uint8_t>(size_t(c.heads * c.blocks * c.blocks), 0xee), 0};
  unsigned long long kept = 0;
  const cuda::NablaSelection selection{.q_pool = q_pool.data<float>(),
                                       .k_pool = k_pool.data<float>(),
                                       .sta = sta.data<uint8_t>(),
                                       .block_mask = result.mask.data(),
                                       .kept = &kept,
                                       .blocks = c.blocks,
                                       .dim = int(c.dim),
                                       .padded = padded,
                                       .inverse_sqrt_d = 1.0f / std::sqrt(float(c.dim)),
                                       .threshold = float(1.0 - c.P)};
  emulation::launch({unsigned(c.heads * c.blocks), 1, 1}, {c.threads, 1, 1}, cuda::nabla_select_shared_bytes(padded),
                    {.schedule = schedule}, cuda::nabla_select_kernel<cuda::kNablaSelectThreads>, selection);
  result.kept = int64_t(kept);
  return result;
}

TEST(EmulatedCudaNabla, KeepsExactlyTheCpuBlocks) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  const std::vector<Case> cases = {
      {2, 100, 64, 0.9, 64}, {3, 37, 16, 0.5, 32}, {1, 64, 128, 0.9, 64}, {2, 1, 64, 0.9, 32}, {1, 130, 8, 0.99, 96}};
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << c.heads << " heads, " << c.blocks << " blocks, D " << c.dim << ", P " << c.P);
    const uint32_t seed = uint32_t(c.blocks * 7 + c.dim);
    const Tensor q_pool = random_tensor({c.heads, c.blocks, c.dim}, seed, 3.0f);
    Tensor k_pool = random_tensor({c.heads, c.blocks, c.dim}, seed + 1, 3.0f);
    // Repeated key blocks tie in probability: the index breaks the tie, as a stable sort does.
    for (int64_t kb = 3; kb < c.blocks; kb += 5)
      for (int64_t h = 0; h < c.heads; ++h)
        std::copy_n(k_pool.data<float>() + (h * c.blocks + kb - 3) * c.dim, c.dim,
                    k_pool.data<float>() + (h * c.blocks + kb) * c.dim);
    Tensor sta = Tensor::zeros(DType::U8, {c.blocks, c.blocks});
    for (int64_t i = 0; i < c.blocks; ++i)
      for (int64_t j = 0; j < c.blocks; ++j) sta.data<uint8_t>()[i * c.blocks + j] = std::abs(i - j) <= 1;
    Tensor expected = Tensor::empty(DType::U8, {c.heads, c.blocks, c.blocks});
    const int64_t expected_kept = ops::nabla_select_blocks(ctx, q_pool, k_pool, sta, c.P, expected);
    const std::vector<uint8_t> cpu_mask(expected.data<uint8_t>(), expected.data<uint8_t>() + expected.numel());
    for (const auto schedule : {emulation::Schedule::first_warps_ahead, emulation::Schedule::last_warps_ahead}) {
      const Selection emulated = run_emulated(c, q_pool, k_pool, sta, schedule);
      EXPECT_EQ(emulated.mask, cpu_mask);
      EXPECT_EQ(emulated.kept, expected_kept);
    }
    // Some blocks are dropped and some kept beyond the STA band, or the case tests little.
    if (c.blocks > 8) {
      EXPECT_LT(expected_kept, c.heads * c.blocks * c.blocks);
      EXPECT_GT(expected_kept, c.heads * (3 * c.blocks - 2));
    }
  }
}

// A row with a NaN has no meaningful choice, but every byte of its mask is still written (0 or 1).
TEST(EmulatedCudaNabla, NanRowsStillWriteEveryByte) {
  const Case c{1, 40, 8, 0.9, 64};
  Tensor q_pool = random_tensor({c.heads, c.blocks, c.dim}, 50);
  const Tensor k_pool = random_tensor({c.heads, c.blocks, c.dim}, 51);
  q_pool.data<float>()[3 * c.dim] = NAN;
  const Tensor sta = Tensor::zeros(DType::U8, {c.blocks, c.blocks});
  for (const auto schedule : {emulation::Schedule::first_warps_ahead, emulation::Schedule::last_warps_ahead})
    for (const uint8_t value : run_emulated(c, q_pool, k_pool, sta, schedule).mask) ASSERT_LE(value, 1);
}

}  // namespace
}  // namespace k5::test
