// The CUDA backend's rotary-embedding kernel (with and without the fused q/k RMSNorm) runs on the CPU under the
// warp emulator, against the CPU ops: its row indexing, grid-stride loop, warp reduction and strided views run in
// every CI run. tests/backends/cuda/attention_test.cpp checks it on a GPU.
#include <gtest/gtest.h>

#include <vector>

#include "backends/cuda_emulated/emulated_kernels.h"
#include "core/context.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "support/compare.h"
#include "support/random.h"

namespace k5::test {
namespace {

// The CPU sums the squares in double and contracts the rotation into FMAs; the kernel sums in float, in a tree.
constexpr double kTolerance = 1e-6;

struct Case {
  int64_t tokens, heads, dim;
  bool interleaved, normalise, weighted;
  unsigned blocks;  // fewer than the rows need: the grid-stride loop takes the rest
};

// Runs the kernel on the q slice of a fused [L, 3, H, D] projection, with cos/sin as column views of one
// [L, D] table and a strided weight, as rope.cu would launch it; returns the whole projection.
Tensor run_emulated(const Case& c, const Tensor& qkv, const Tensor& angles, const Tensor& weights) {
  Tensor result = qkv.clone();
  Tensor q = result.select(1, 0);
  const cuda::RopeRows rows{.x = q.data<float>(),
                            .token_stride = q.stride(0),
                            .head_stride = q.stride(1),
                            .cos = angles.data<float>(),
                            .cos_stride = angles.stride(0),
                            .sin = angles.data<float>() + c.dim / 2,
                            .sin_stride = angles.stride(0),
                            .tokens = c.tokens,
                            .heads = c.heads,
                            .half = c.dim / 2,
                            .norm_weight = c.weighted ? weights.data<float>() : nullptr,
                            .norm_weight_stride = 2,
                            .norm_eps = 1e-6f};
  const emulation::Dim3 grid{c.blocks, 1, 1}, block{32 * cuda::kRopeWarpsPerBlock, 1, 1};
  const auto launch = [&](auto kernel) { emulation::launch(grid, block, kernel, rows); };
  if (c.interleaved && c.normalise)
    launch(cuda::rope_kernel<true, true>);
  else if (c.interleaved)
    launch(cuda::rope_kernel<true, false>);
  else if (c.normalise)
    launch(cuda::rope_kernel<false, true>);
  else
    launch(cuda::rope_kernel<false, false>);
  return result;
}

// The CPU ops on the same views: rms_norm then the rotation (the composition the fused op stands for), or the
// fused CPU op itself.
Tensor run_cpu(Context& ctx, const Case& c, const Tensor& qkv, const Tensor& angles, const Tensor& weights,
               bool fused) {
  Tensor result = qkv.clone();
  Tensor q = result.select(1, 0);
  const Tensor cos = angles.slice(1, 0, c.dim / 2), sin = angles.slice(1, c.dim / 2, c.dim);
  const Tensor weight = weights.reshape({c.dim, 2}).select(1, 0);
  const ops::HeadRmsNorm norm{c.weighted ? &weight : nullptr, 1e-6f};
  if (c.normalise && fused) {
    ops::rms_norm_rope_interleaved(ctx, q, norm, cos, sin);
    return result;
  }
  Tensor heads = q.contiguous();  // rms_norm takes evenly spaced rows only
  if (c.normalise) ops::rms_norm(ctx, heads, norm.weight, norm.eps, heads);
  c.interleaved ? ops::rope_interleaved(ctx, heads, cos, sin) : ops::rope_half_split(ctx, heads, cos, sin);
  q.copy_from(heads);
  return result;
}

TEST(EmulatedCudaRope, FollowsTheCpuOps) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  const std::vector<Case> cases = {
      {37, 3, 64, true, true, true, 4},   {37, 3, 64, true, false, false, 14}, {9, 28, 128, true, true, true, 5},
      {9, 5, 128, false, true, false, 2}, {21, 2, 64, false, false, false, 6}, {5, 3, 8, true, true, true, 1},
      {4, 2, 200, true, true, true, 1},   {4, 2, 200, false, true, true, 3},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << c.tokens << "x" << c.heads << "x" << c.dim << " interleaved " << c.interleaved
                                      << " normalise " << c.normalise << " weighted " << c.weighted);
    const uint32_t seed = uint32_t(c.tokens * 131 + c.dim);
    const Tensor qkv = random_tensor({c.tokens, 3, c.heads, c.dim}, seed, 3.0f);
    const Tensor angles = random_tensor({c.tokens, c.dim}, seed + 1);  // cos | sin
    const Tensor weights = random_tensor({2 * c.dim}, seed + 2);       // the even entries are the norm weight
    const Tensor emulated = run_emulated(c, qkv, angles, weights);
    const Tensor expected = run_cpu(ctx, c, qkv, angles, weights, false);
    EXPECT_LE(relative_l2(emulated, expected), kTolerance);
    // Only the q slice changes.
    EXPECT_EQ(relative_l2(emulated.select(1, 1).contiguous(), qkv.select(1, 1).contiguous()), 0.0);
    EXPECT_EQ(relative_l2(emulated.select(1, 2).contiguous(), qkv.select(1, 2).contiguous()), 0.0);
    if (c.interleaved && c.normalise) {
      EXPECT_EQ(relative_l2(run_cpu(ctx, c, qkv, angles, weights, true), expected), 0.0)
          << "the fused CPU op should give exactly rms_norm then rope_interleaved";
    }
  }
}

}  // namespace
}  // namespace k5::test
