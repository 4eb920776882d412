// CUDA attention (dense and NABLA block-sparse) and rotary embeddings against the CPU ops on the same inputs.
#include "ops/attention.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <random>
#include <sstream>
#include <string>

#include "gpu_test_util.h"
#include "ops/norm.h"
#include "ops/rope.h"

namespace k5::test {
namespace {

using CudaAttention = GpuTest;

// Precision::bf16 rounds q, k, v and the probabilities to BF16 on both backends (float32 accumulation), so
// against the float32 CPU result both land about 3e-3 away (relative L2; 5e-3 with sharper scores) — the
// CPU op's own test allows 1e-2, and so do we. Between the two BF16 results only the probability roundings
// differ (the running max they are taken against moves every 64 keys on the GPU, every 512 on the CPU): a
// NumPy model of both loops puts that at 5e-4 to 1.3e-3, hence 4e-3. And the GPU's BF16 result must differ
// from its float32 one by more than 1e-4, or the roundings were not applied.
constexpr double kBf16VsF32Tolerance = 1e-2;
constexpr double kBf16VsCpuBf16Tolerance = 4e-3;
constexpr double kBf16MinimumEffect = 1e-4;

struct DenseCase {
  int64_t q_tokens, k_tokens, q_heads, kv_heads, dim;
  bool causal = false;
  bool key_mask = false;
  float scale = 0.0f;
  float q_spread = 1.0f;  // standard deviation of q: larger = sharper softmax
};

std::string describe(const DenseCase& c) {
  std::ostringstream s;
  s << "Lq " << c.q_tokens << " Lk " << c.k_tokens << " Hq " << c.q_heads << " Hkv " << c.kv_heads << " D " << c.dim
    << " causal " << c.causal << " key_mask " << c.key_mask << " scale " << c.scale;
  return s.str();
}

// 1 = visible. The last fifth of the keys are padding, and every 7th key is masked too.
Tensor padded_key_mask(int64_t keys) {
  Tensor mask = Tensor::empty(DType::U8, {keys});
  for (int64_t j = 0; j < keys; ++j) mask.data<uint8_t>()[j] = j < keys - keys / 5 && j % 7 != 3;
  return mask;
}

struct DenseResults {
  Tensor cpu, gpu;
};

DenseResults run_dense(Context& ctx, const DenseCase& c, uint32_t seed) {
  const Tensor q = random_tensor({c.q_tokens, c.q_heads, c.dim}, seed, c.q_spread);
  const Tensor k = random_tensor({c.k_tokens, c.kv_heads, c.dim}, seed + 1);
  const Tensor v = random_tensor({c.k_tokens, c.kv_heads, c.dim}, seed + 2);
  const Tensor mask = padded_key_mask(c.k_tokens), gpu_mask = on_gpu(mask);
  ops::AttentionOptions options{.scale = c.scale, .causal = c.causal, .key_mask = c.key_mask ? &mask : nullptr};
  DenseResults results{Tensor::empty(DType::F32, {c.q_tokens, c.q_heads, c.dim}),
                       Tensor::empty(DType::F32, {c.q_tokens, c.q_heads, c.dim}, Device::CUDA)};
  ops::attention(ctx, q, k, v, results.cpu, options);
  options.key_mask = c.key_mask ? &gpu_mask : nullptr;
  ops::attention(ctx, on_gpu(q), on_gpu(k), on_gpu(v), results.gpu, options);
  return results;
}

void check_dense(Context& ctx, const DenseCase& c, uint32_t seed) {
  SCOPED_TRACE(describe(c));
  const DenseResults results = run_dense(ctx, c, seed);
  EXPECT_LE(gpu_vs_cpu(results.gpu, results.cpu), kF32Tolerance);
}

// K5_CUDA_ATTENTION set for a scope (the CUDA op reads it at every call), the previous value restored after.
class ForcedKernel {
 public:
  explicit ForcedKernel(const std::string& kernel) {
    if (const char* previous = std::getenv(kVariable)) previous_ = previous;
    setenv(kVariable, kernel.c_str(), 1);
  }
  ~ForcedKernel() { previous_ ? setenv(kVariable, previous_->c_str(), 1) : unsetenv(kVariable); }
  ForcedKernel(const ForcedKernel&) = delete;
  ForcedKernel& operator=(const ForcedKernel&) = delete;

 private:
  static constexpr const char* kVariable = "K5_CUDA_ATTENTION";
  std::optional<std::string> previous_;
};

// Runs `check` with the automatic kernel choice and with each BF16 kernel forced; a kernel this GPU or this head
// dim cannot run (the op refuses it with an error naming K5_CUDA_ATTENTION) is left out, and said so. An sm_90 GPU
// refusing the wgmma kernel a head dim it takes is a failure (a build without sm_90a would pass unnoticed).
void for_each_bf16_kernel(const std::function<void()>& check) {
  for (const std::string kernel : {"auto", "wgmma", "wgmma-serial", "mma", "wmma", "simt"}) {
    SCOPED_TRACE("K5_CUDA_ATTENTION=" + kernel);
    const ForcedKernel forced(kernel);
    try {
      check();
    } catch (const Error& e) {
      const std::string message = e.what();
      if (message.find("K5_CUDA_ATTENTION") == std::string::npos) throw;
      const bool model_head_dim =
          message.find("(head dim 64)") != std::string::npos || message.find("(head dim 128)") != std::string::npos;
      if (kernel.starts_with("wgmma") && model_head_dim && cuda::compute_capability() / 10 == 9)
        ADD_FAILURE() << "an sm_90 GPU refused the wgmma kernel: " << message;
      std::printf("[ note ] %s\n", message.c_str());
    }
  }
}

// Lengths that are not multiples of the 64-row tiles, Lq != Lk both ways, and the models' head dims.
TEST_F(CudaAttention, DenseAgreesWithCpu) {
  uint32_t seed = 100;
  for (int64_t dim : {64, 128}) {
    check_dense(ctx, {.q_tokens = 77, .k_tokens = 130, .q_heads = 2, .kv_heads = 2, .dim = dim}, seed += 3);
    check_dense(ctx, {.q_tokens = 130, .k_tokens = 77, .q_heads = 2, .kv_heads = 2, .dim = dim}, seed += 3);
    check_dense(ctx, {.q_tokens = 64, .k_tokens = 64, .q_heads = 1, .kv_heads = 1, .dim = dim}, seed += 3);
    check_dense(ctx, {.q_tokens = 1, .k_tokens = 200, .q_heads = 3, .kv_heads = 3, .dim = dim}, seed += 3);
  }
}

// Small and odd head dims (columns past D are guarded in the kernel).
TEST_F(CudaAttention, SmallHeadDims) {
  uint32_t seed = 200;
  for (int64_t dim : {8, 16, 24, 40, 80, 96, 120})
    check_dense(ctx, {.q_tokens = 70, .k_tokens = 90, .q_heads = 2, .kv_heads = 1, .dim = dim}, seed += 3);
}

TEST_F(CudaAttention, GroupedQueryHeads) {
  uint32_t seed = 300;
  for (int64_t dim : {64, 128}) {
    check_dense(ctx, {.q_tokens = 77, .k_tokens = 130, .q_heads = 4, .kv_heads = 2, .dim = dim}, seed += 3);
    check_dense(ctx, {.q_tokens = 130, .k_tokens = 130, .q_heads = 4, .kv_heads = 1, .dim = dim}, seed += 3);
  }
}

// Causal with Lq == Lk, Lq < Lk (queries see the earlier keys too) and Lq > Lk (the first queries see no key
// and get zeros on both backends).
TEST_F(CudaAttention, Causal) {
  uint32_t seed = 400;
  for (int64_t dim : {64, 128}) {
    check_dense(ctx, {.q_tokens = 130, .k_tokens = 130, .q_heads = 4, .kv_heads = 2, .dim = dim, .causal = true},
                seed += 3);
    check_dense(ctx, {.q_tokens = 77, .k_tokens = 130, .q_heads = 2, .kv_heads = 2, .dim = dim, .causal = true},
                seed += 3);
    check_dense(ctx, {.q_tokens = 130, .k_tokens = 77, .q_heads = 2, .kv_heads = 1, .dim = dim, .causal = true},
                seed += 3);
  }
}

TEST_F(CudaAttention, CausalLaterQueriesOfLongerQueryAreZero) {
  const DenseResults results =
      run_dense(ctx, {.q_tokens = 130, .k_tokens = 77, .q_heads = 1, .kv_heads = 1, .dim = 64, .causal = true}, 450);
  // Query i sees keys j <= i - 53: the first 53 rows see nothing.
  const Tensor gpu = results.gpu.to_device(Device::CPU);
  for (int64_t i = 0; i < 53 * 64; ++i) ASSERT_EQ(gpu.data<float>()[i], 0.0f) << "element " << i;
  EXPECT_LE(relative_l2(gpu, results.cpu), kF32Tolerance);
}

TEST_F(CudaAttention, KeyMaskWithPaddedKeys) {
  uint32_t seed = 500;
  for (int64_t dim : {64, 128}) {
    check_dense(ctx, {.q_tokens = 77, .k_tokens = 130, .q_heads = 2, .kv_heads = 2, .dim = dim, .key_mask = true},
                seed += 3);
    check_dense(
        ctx,
        {.q_tokens = 130, .k_tokens = 130, .q_heads = 4, .kv_heads = 2, .dim = dim, .causal = true, .key_mask = true},
        seed += 3);
  }
}

// Many key tiles, an explicit scale and a sharp softmax: the running max moves often.
TEST_F(CudaAttention, LongSequencesAndExplicitScale) {
  check_dense(ctx, {.q_tokens = 1000, .k_tokens = 1000, .q_heads = 2, .kv_heads = 2, .dim = 128, .causal = true}, 600);
  check_dense(
      ctx, {.q_tokens = 333, .k_tokens = 1500, .q_heads = 2, .kv_heads = 1, .dim = 64, .scale = 0.3f, .q_spread = 2.0f},
      603);
}

// q, k, v as views of one fused projection [L, 3, H, D] (token stride 3 * H * D, head stride D).
TEST_F(CudaAttention, StridedViewsOfFusedProjection) {
  for (int64_t dim : {64, 128}) {
    for (int64_t tokens : {77, 130}) {
      SCOPED_TRACE(::testing::Message() << "D " << dim << " L " << tokens);
      const Tensor qkv = random_tensor({tokens, 3, 4, dim}, 700 + uint32_t(dim + tokens));
      Tensor expected = Tensor::empty(DType::F32, {tokens, 4, dim});
      ops::attention(ctx, qkv.select(1, 0), qkv.select(1, 1), qkv.select(1, 2), expected);
      const Tensor gpu_qkv = on_gpu(qkv);
      Tensor out = Tensor::empty(DType::F32, {tokens, 4, dim}, Device::CUDA);
      ops::attention(ctx, gpu_qkv.select(1, 0), gpu_qkv.select(1, 1), gpu_qkv.select(1, 2), out);
      EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance);
      // GQA on views: the key/value heads are half of the k and v slices.
      Tensor grouped_expected = Tensor::empty(DType::F32, {tokens, 4, dim});
      ops::attention(ctx, qkv.select(1, 0), qkv.select(1, 1).slice(1, 0, 2), qkv.select(1, 2).slice(1, 2, 4),
                     grouped_expected, {.causal = true});
      Tensor grouped = Tensor::empty(DType::F32, {tokens, 4, dim}, Device::CUDA);
      ops::attention(ctx, gpu_qkv.select(1, 0), gpu_qkv.select(1, 1).slice(1, 0, 2),
                     gpu_qkv.select(1, 2).slice(1, 2, 4), grouped, {.causal = true});
      EXPECT_LE(gpu_vs_cpu(grouped, grouped_expected), kF32Tolerance);
    }
  }
}

TEST_F(CudaAttention, Bf16PrecisionStaysWithinTheBf16Budget) {
  Context bf16_ctx{{.threads = 2, .precision = Precision::bf16, .log_level = LogLevel::quiet}};
  uint32_t seed = 800;
  for (const DenseCase& c :
       {DenseCase{.q_tokens = 197, .k_tokens = 197, .q_heads = 4, .kv_heads = 2, .dim = 64, .causal = true},
        DenseCase{.q_tokens = 77, .k_tokens = 340, .q_heads = 2, .kv_heads = 2, .dim = 128, .key_mask = true},
        DenseCase{.q_tokens = 340, .k_tokens = 340, .q_heads = 2, .kv_heads = 2, .dim = 64, .q_spread = 3.0f},
        // Many key tiles (the tensor-core kernels double-buffer them), grouped heads, query rows past the last
        // full block of the two-warpgroup kernel.
        DenseCase{.q_tokens = 1100, .k_tokens = 1300, .q_heads = 4, .kv_heads = 2, .dim = 128},
        DenseCase{
            .q_tokens = 700, .k_tokens = 700, .q_heads = 2, .kv_heads = 1, .dim = 64, .causal = true, .key_mask = true},
        // D % 16 == 0 but neither 64 nor 128: the WMMA tensor-core kernel instead of the mma.sync one.
        DenseCase{.q_tokens = 130, .k_tokens = 200, .q_heads = 2, .kv_heads = 2, .dim = 96, .key_mask = true},
        // D % 16 != 0: the CUDA-core kernel's BF16 mode instead of the tensor-core kernel.
        DenseCase{.q_tokens = 150, .k_tokens = 150, .q_heads = 2, .kv_heads = 1, .dim = 40, .causal = true}}) {
    SCOPED_TRACE(describe(c));
    seed += 3;
    const DenseResults f32 = run_dense(ctx, c, seed);
    EXPECT_LE(gpu_vs_cpu(f32.gpu, f32.cpu), kF32Tolerance);
    for_each_bf16_kernel([&] {
      const DenseResults bf16 = run_dense(bf16_ctx, c, seed);
      EXPECT_LE(gpu_vs_cpu(bf16.gpu, f32.cpu), kBf16VsF32Tolerance);
      EXPECT_LE(gpu_vs_cpu(bf16.gpu, bf16.cpu), kBf16VsCpuBf16Tolerance);
      EXPECT_GE(relative_l2(bf16.gpu.to_device(Device::CPU), f32.gpu.to_device(Device::CPU)), kBf16MinimumEffect);
    });
  }
}

// ---- Block-sparse (NABLA) -----------------------------------------------------------------------------------

// A random [heads, blocks, blocks] mask with the diagonal kept, except query block `empty_block` of the last
// head, whose row is all zero.
Tensor random_block_mask(int64_t heads, int64_t query_blocks, int64_t key_blocks, int64_t empty_block, uint32_t seed) {
  std::mt19937 generator(seed);
  std::bernoulli_distribution keep(0.4);
  Tensor mask = Tensor::empty(DType::U8, {heads, query_blocks, key_blocks});
  uint8_t* m = mask.data<uint8_t>();
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < query_blocks; ++i)
      for (int64_t j = 0; j < key_blocks; ++j) {
        const bool kept = (i == j || keep(generator)) && !(h == heads - 1 && i == empty_block);
        m[(h * query_blocks + i) * key_blocks + j] = kept;
      }
  return mask;
}

struct SparseCase {
  int64_t tokens, heads, dim;
  int block_size;
};

void check_sparse(Context& ctx, const SparseCase& c, uint32_t seed, double tolerance = kF32Tolerance) {
  SCOPED_TRACE(::testing::Message() << "L " << c.tokens << " H " << c.heads << " D " << c.dim << " block "
                                    << c.block_size);
  const int64_t blocks = (c.tokens + c.block_size - 1) / c.block_size, empty_block = 1;
  const Tensor q = random_tensor({c.tokens, c.heads, c.dim}, seed);
  const Tensor k = random_tensor({c.tokens, c.heads, c.dim}, seed + 1);
  const Tensor v = random_tensor({c.tokens, c.heads, c.dim}, seed + 2);
  const Tensor mask = random_block_mask(c.heads, blocks, blocks, empty_block, seed + 3);
  Tensor expected = Tensor::empty(DType::F32, {c.tokens, c.heads, c.dim});
  ops::block_sparse_attention(ctx, q, k, v, mask, c.block_size, expected);
  Tensor out = Tensor::empty(DType::F32, {c.tokens, c.heads, c.dim}, Device::CUDA);
  ops::block_sparse_attention(ctx, on_gpu(q), on_gpu(k), on_gpu(v), on_gpu(mask), c.block_size, out);
  EXPECT_LE(gpu_vs_cpu(out, expected), tolerance);
  // The all-zero mask row: its queries see nothing and come out as zeros.
  const Tensor result = out.to_device(Device::CPU);
  for (int64_t token = empty_block * c.block_size; token < std::min(c.tokens, (empty_block + 1) * c.block_size);
       ++token)
    for (int64_t d = 0; d < c.dim; ++d)
      ASSERT_EQ(result.data<float>()[(token * c.heads + c.heads - 1) * c.dim + d], 0.0f) << "token " << token;
}

TEST_F(CudaAttention, BlockSparseAgreesWithCpu) {
  // The models' block of 64 with a partial last block (5 * 64 + 20 tokens), both head dims.
  check_sparse(ctx, {.tokens = 64 * 5 + 20, .heads = 2, .dim = 64, .block_size = 64}, 900);
  check_sparse(ctx, {.tokens = 64 * 5 + 20, .heads = 3, .dim = 128, .block_size = 64}, 910);
  check_sparse(ctx, {.tokens = 64 * 8, .heads = 2, .dim = 128, .block_size = 64}, 920);
}

// Blocks that are not the kernel's 64-token tiles: smaller, larger, and straddling tiles.
TEST_F(CudaAttention, BlockSparseOtherBlockSizes) {
  check_sparse(ctx, {.tokens = 200, .heads = 2, .dim = 32, .block_size = 16}, 930);
  check_sparse(ctx, {.tokens = 200, .heads = 2, .dim = 64, .block_size = 48}, 940);
  check_sparse(ctx, {.tokens = 300, .heads = 2, .dim = 128, .block_size = 128}, 950);
  check_sparse(ctx, {.tokens = 300, .heads = 2, .dim = 64, .block_size = 100}, 960);
}

TEST_F(CudaAttention, BlockSparseBoolMaskAndBf16) {
  const int64_t tokens = 64 * 3 + 5, heads = 2, dim = 64, blocks = 4;
  const Tensor q = random_tensor({tokens, heads, dim}, 970), k = random_tensor({tokens, heads, dim}, 971);
  const Tensor v = random_tensor({tokens, heads, dim}, 972);
  const Tensor mask = random_block_mask(heads, blocks, blocks, 2, 973);
  Tensor bool_mask = Tensor::empty(DType::BOOL, mask.shape());
  std::copy(mask.data<uint8_t>(), mask.data<uint8_t>() + mask.numel(), bool_mask.data<uint8_t>());
  Tensor expected = Tensor::empty(DType::F32, {tokens, heads, dim});
  ops::block_sparse_attention(ctx, q, k, v, mask, 64, expected);
  Tensor out = Tensor::empty(DType::F32, {tokens, heads, dim}, Device::CUDA);
  ops::block_sparse_attention(ctx, on_gpu(q), on_gpu(k), on_gpu(v), on_gpu(bool_mask), 64, out);
  EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance);

  // BF16 with the models' blocks and with blocks that straddle the kernel's tiles.
  Context bf16_ctx{{.threads = 2, .precision = Precision::bf16, .log_level = LogLevel::quiet}};
  for (int block_size : {64, 48})
    for_each_bf16_kernel([&] {
      SCOPED_TRACE(::testing::Message() << "bf16, block " << block_size);
      const int64_t bf16_blocks = (tokens + block_size - 1) / block_size;
      const Tensor bf16_mask = random_block_mask(heads, bf16_blocks, bf16_blocks, 2, 974 + uint32_t(block_size));
      Tensor expected_f32 = Tensor::empty(DType::F32, {tokens, heads, dim});
      ops::block_sparse_attention(ctx, q, k, v, bf16_mask, block_size, expected_f32);
      Tensor expected_bf16 = Tensor::empty(DType::F32, {tokens, heads, dim});
      ops::block_sparse_attention(bf16_ctx, q, k, v, bf16_mask, block_size, expected_bf16);
      Tensor out_bf16 = Tensor::empty(DType::F32, {tokens, heads, dim}, Device::CUDA);
      ops::block_sparse_attention(bf16_ctx, on_gpu(q), on_gpu(k), on_gpu(v), on_gpu(bf16_mask), block_size, out_bf16);
      EXPECT_LE(gpu_vs_cpu(out_bf16, expected_f32), kBf16VsF32Tolerance);
      EXPECT_LE(gpu_vs_cpu(out_bf16, expected_bf16), kBf16VsCpuBf16Tolerance);
    });
}

// NABLA in BF16 at the models' head dims with many blocks: the tensor-core kernels skip masked 64 x 64 blocks
// (several in a row, so the next visited tile is further on) and double-buffer the kept ones.
TEST_F(CudaAttention, BlockSparseBf16ModelHeadDims) {
  Context bf16_ctx{{.threads = 2, .precision = Precision::bf16, .log_level = LogLevel::quiet}};
  for (const int64_t dim : {64, 128}) {
    SCOPED_TRACE(::testing::Message() << "D " << dim);
    const int64_t tokens = 64 * 11 + 30, heads = 3, blocks = 12;
    const Tensor q = random_tensor({tokens, heads, dim}, 1000), k = random_tensor({tokens, heads, dim}, 1001);
    const Tensor v = random_tensor({tokens, heads, dim}, 1002);
    const Tensor mask = random_block_mask(heads, blocks, blocks, 4, 1003);
    Tensor expected_f32 = Tensor::empty(DType::F32, {tokens, heads, dim});
    ops::block_sparse_attention(ctx, q, k, v, mask, 64, expected_f32);
    Tensor expected_bf16 = Tensor::empty(DType::F32, {tokens, heads, dim});
    ops::block_sparse_attention(bf16_ctx, q, k, v, mask, 64, expected_bf16);
    for_each_bf16_kernel([&] {
      Tensor out = Tensor::empty(DType::F32, {tokens, heads, dim}, Device::CUDA);
      ops::block_sparse_attention(bf16_ctx, on_gpu(q), on_gpu(k), on_gpu(v), on_gpu(mask), 64, out);
      EXPECT_LE(gpu_vs_cpu(out, expected_f32), kBf16VsF32Tolerance);
      EXPECT_LE(gpu_vs_cpu(out, expected_bf16), kBf16VsCpuBf16Tolerance);
      // Query block 4 of the last head sees nothing: zeros.
      const Tensor result = out.to_device(Device::CPU);
      for (int64_t token = 4 * 64; token < 5 * 64; ++token)
        for (int64_t d = 0; d < dim; ++d)
          ASSERT_EQ(result.data<float>()[(token * heads + heads - 1) * dim + d], 0.0f) << "token " << token;
    });
  }
}

TEST_F(CudaAttention, UnknownOrImpossibleForcedKernelIsAnError) {
  Context bf16_ctx{{.threads = 2, .precision = Precision::bf16, .log_level = LogLevel::quiet}};
  const Tensor q = on_gpu(random_tensor({70, 2, 96}, 1010));
  Tensor out = Tensor::empty(DType::F32, {70, 2, 96}, Device::CUDA);
  {
    const ForcedKernel forced("fastest");
    EXPECT_THROW(ops::attention(bf16_ctx, q, q, q, out), Error);
  }
  const ForcedKernel forced("mma");  // mma.sync (and wgmma) only take head dims 64 and 128
  try {
    ops::attention(bf16_ctx, q, q, q, out);
    ADD_FAILURE() << "K5_CUDA_ATTENTION=mma ran head dim 96";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("head dim 96"), std::string::npos) << e.what();
  }
  ops::attention(ctx, q, q, q, out);  // float32 precision always runs the reference kernel
}

// Every kept block on: block-sparse attention is dense attention.
TEST_F(CudaAttention, BlockSparseWithFullMaskIsDense) {
  const int64_t tokens = 150, heads = 2, dim = 64, blocks = 3;
  const Tensor q = random_tensor({tokens, heads, dim}, 980), k = random_tensor({tokens, heads, dim}, 981);
  const Tensor v = random_tensor({tokens, heads, dim}, 982);
  Tensor mask = Tensor::empty(DType::U8, {heads, blocks, blocks});
  std::fill(mask.data<uint8_t>(), mask.data<uint8_t>() + mask.numel(), uint8_t(1));
  Tensor dense = Tensor::empty(DType::F32, {tokens, heads, dim});
  ops::attention(ctx, q, k, v, dense);
  Tensor out = Tensor::empty(DType::F32, {tokens, heads, dim}, Device::CUDA);
  ops::block_sparse_attention(ctx, on_gpu(q), on_gpu(k), on_gpu(v), on_gpu(mask), 64, out);
  EXPECT_LE(gpu_vs_cpu(out, dense), kF32Tolerance);
}

// ---- Operands in the wrong place --------------------------------------------------------------------------

TEST_F(CudaAttention, HostOperandMixedWithGpuOnesIsAnError) {
  const Tensor q = random_tensor({10, 2, 64}, 990), k = random_tensor({10, 2, 64}, 991);
  const Tensor v = random_tensor({10, 2, 64}, 992);
  const Tensor gpu_q = on_gpu(q), gpu_k = on_gpu(k), gpu_v = on_gpu(v);
  Tensor out = Tensor::empty(DType::F32, {10, 2, 64}, Device::CUDA);
  EXPECT_THROW(ops::attention(ctx, gpu_q, k, gpu_v, out), Error);
  Tensor host_out = Tensor::empty(DType::F32, {10, 2, 64});
  EXPECT_THROW(ops::attention(ctx, gpu_q, gpu_k, gpu_v, host_out), Error);
  const Tensor mask = padded_key_mask(10);
  EXPECT_THROW(ops::attention(ctx, gpu_q, gpu_k, gpu_v, out, {.key_mask = &mask}), Error);
  const Tensor gpu_mask = on_gpu(mask);
  EXPECT_THROW(ops::attention(ctx, q, k, v, host_out, {.key_mask = &gpu_mask}), Error);
  Tensor block_mask = Tensor::empty(DType::U8, {2, 1, 1});
  block_mask.data<uint8_t>()[0] = block_mask.data<uint8_t>()[1] = 1;
  EXPECT_THROW(ops::block_sparse_attention(ctx, gpu_q, gpu_k, gpu_v, block_mask, 64, out), Error);
  Tensor x = on_gpu(q);
  const Tensor cos = random_tensor({10, 32}, 993), sin = random_tensor({10, 32}, 994);
  EXPECT_THROW(ops::rope_interleaved(ctx, x, cos, on_gpu(sin)), Error);
}

TEST_F(CudaAttention, HeadDimAboveTheKernelLimitIsAnError) {
  const Tensor q = on_gpu(random_tensor({4, 1, 256}, 995));
  Tensor out = Tensor::empty(DType::F32, {4, 1, 256}, Device::CUDA);
  EXPECT_THROW(ops::attention(ctx, q, q, q, out), Error);
}

// ---- NABLA's block selection ------------------------------------------------------------------------------

using CudaNabla = GpuTest;

// The same blocks as the CPU op, at Video Lite 10 s's 1,464 blocks per row and past the default 48 KiB of shared
// memory (5,000 blocks sort 8,192 slots; 9,000 sort 16,384, the most: 128 KiB).
TEST_F(CudaNabla, SelectsExactlyTheCpuBlocks) {
  for (const int64_t blocks : {1464, 5000, 9000, 3}) {
    SCOPED_TRACE(::testing::Message() << blocks << " blocks");
    const int64_t heads = blocks > 5000 ? 1 : 2, dim = 64;
    const Tensor q_pool = random_tensor({heads, blocks, dim}, 1030, 3.0f);
    const Tensor k_pool = random_tensor({heads, blocks, dim}, 1031, 3.0f);
    Tensor sta = Tensor::zeros(DType::U8, {blocks, blocks});
    for (int64_t i = 0; i < blocks; ++i) sta.data<uint8_t>()[i * blocks + i] = 1;
    Tensor expected = Tensor::empty(DType::U8, {heads, blocks, blocks});
    const int64_t expected_kept = ops::nabla_select_blocks(ctx, q_pool, k_pool, sta, 0.9, expected);
    Tensor mask = Tensor::empty(DType::U8, {heads, blocks, blocks}, Device::CUDA);
    const int64_t kept = ops::nabla_select_blocks(ctx, on_gpu(q_pool), on_gpu(k_pool), on_gpu(sta), 0.9, mask);
    EXPECT_EQ(kept, expected_kept);
    const Tensor result = mask.to_device(Device::CPU);
    EXPECT_TRUE(std::equal(result.data<uint8_t>(), result.data<uint8_t>() + result.numel(), expected.data<uint8_t>()));
  }
}

TEST_F(CudaNabla, MoreBlocksThanOneSortTakesIsAnError) {
  const int64_t blocks = 16385;
  const Tensor pool = on_gpu(random_tensor({1, blocks, 1}, 1032));
  const Tensor sta = Tensor::empty(DType::U8, {blocks, blocks}, Device::CUDA);
  Tensor mask = Tensor::empty(DType::U8, {1, blocks, blocks}, Device::CUDA);
  EXPECT_THROW(ops::nabla_select_blocks(ctx, pool, pool, sta, 0.9, mask), Error);
}

// ---- Rotary embeddings ------------------------------------------------------------------------------------

using CudaRope = GpuTest;

TEST_F(CudaRope, BothFormsAgreeWithCpu) {
  for (int64_t dim : {64, 128, 8}) {
    for (bool interleaved : {true, false}) {
      SCOPED_TRACE(::testing::Message() << "D " << dim << " interleaved " << interleaved);
      const int64_t tokens = 77, heads = 3;
      const Tensor x = random_tensor({tokens, heads, dim}, 1000 + uint32_t(dim), 2.0f);
      const Tensor cos = random_tensor({tokens, dim / 2}, 1001), sin = random_tensor({tokens, dim / 2}, 1002);
      Tensor expected = x.clone();
      Tensor out = on_gpu(x);
      if (interleaved) {
        ops::rope_interleaved(ctx, expected, cos, sin);
        ops::rope_interleaved(ctx, out, on_gpu(cos), on_gpu(sin));
      } else {
        ops::rope_half_split(ctx, expected, cos, sin);
        ops::rope_half_split(ctx, out, on_gpu(cos), on_gpu(sin));
      }
      EXPECT_LE(gpu_vs_cpu(out, expected), kF32Tolerance);
    }
  }
}

// In place on the q slice of a fused [L, 3, H, D] projection, with cos/sin rows that are views too: only the
// q slice changes.
TEST_F(CudaRope, InPlaceOnStridedViews) {
  const int64_t tokens = 130, heads = 4, dim = 128;
  const Tensor qkv = random_tensor({tokens, 3, heads, dim}, 1010);
  const Tensor angles = random_tensor({tokens, dim}, 1011);  // cos in the first half of a row, sin in the second
  const Tensor cos = angles.slice(1, 0, dim / 2), sin = angles.slice(1, dim / 2, dim);
  for (bool interleaved : {true, false}) {
    SCOPED_TRACE(::testing::Message() << "interleaved " << interleaved);
    Tensor expected = qkv.clone();
    Tensor expected_q = expected.select(1, 0);
    Tensor gpu_qkv = on_gpu(qkv);
    Tensor gpu_q = gpu_qkv.select(1, 0);
    const Tensor gpu_angles = on_gpu(angles);
    const Tensor gpu_cos = gpu_angles.slice(1, 0, dim / 2), gpu_sin = gpu_angles.slice(1, dim / 2, dim);
    if (interleaved) {
      ops::rope_interleaved(ctx, expected_q, cos, sin);
      ops::rope_interleaved(ctx, gpu_q, gpu_cos, gpu_sin);
    } else {
      ops::rope_half_split(ctx, expected_q, cos, sin);
      ops::rope_half_split(ctx, gpu_q, gpu_cos, gpu_sin);
    }
    EXPECT_LE(gpu_vs_cpu(gpu_qkv, expected), kF32Tolerance);
    const Tensor result = gpu_qkv.to_device(Device::CPU);
    EXPECT_EQ(relative_l2(result.select(1, 1).contiguous(), qkv.select(1, 1).contiguous()), 0.0);
    EXPECT_EQ(relative_l2(result.select(1, 2).contiguous(), qkv.select(1, 2).contiguous()), 0.0);
  }
}

// The CrossDiT's q/k: RMSNorm of each head fused into the rotation, on the q slice of a fused projection with a
// strided weight, against the CPU's rms_norm then rope_interleaved.
TEST_F(CudaRope, RmsNormFusedIntoTheRotation) {
  for (int64_t dim : {64, 128, 200}) {
    SCOPED_TRACE(::testing::Message() << "D " << dim);
    const int64_t tokens = 300, heads = 5;
    const Tensor qkv = random_tensor({tokens, 3, heads, dim}, 1020 + uint32_t(dim), 3.0f);
    const Tensor cos = random_tensor({tokens, dim / 2}, 1021), sin = random_tensor({tokens, dim / 2}, 1022);
    const Tensor weights = random_tensor({dim, 2}, 1023);
    for (bool weighted : {true, false}) {
      Tensor expected = qkv.select(1, 0).contiguous();
      const Tensor weight = weights.select(1, 1);
      ops::rms_norm(ctx, expected, weighted ? &weight : nullptr, 1e-6f, expected);
      ops::rope_interleaved(ctx, expected, cos, sin);
      Tensor gpu_qkv = on_gpu(qkv);
      Tensor gpu_q = gpu_qkv.select(1, 0);
      const Tensor gpu_weights = on_gpu(weights), gpu_weight = gpu_weights.select(1, 1);
      ops::rms_norm_rope_interleaved(ctx, gpu_q, {weighted ? &gpu_weight : nullptr, 1e-6f}, on_gpu(cos), on_gpu(sin));
      const Tensor result = gpu_qkv.to_device(Device::CPU);
      EXPECT_LE(relative_l2(result.select(1, 0).contiguous(), expected), kF32Tolerance) << "weighted " << weighted;
      EXPECT_EQ(relative_l2(result.select(1, 1).contiguous(), qkv.select(1, 1).contiguous()), 0.0);
    }
  }
}

}  // namespace
}  // namespace k5::test
