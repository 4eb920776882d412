// k5 kernel timings at DiT shapes: GEMM (fp32 and BF16 weights) and attention, plus this CPU's measured peak.
// Prints one line per case: `k5 <case> <dtype> <best seconds> <GFLOP/s>`; bench/run_kernels.sh pairs the lines
// with bench/torch_kernels.py's and writes the table with ratios.
//
//   bench_kernels [threads] [repeat] [quick]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>

#include "bench/peak_flops.h"
#include "ops/attention.h"
#include "ops/linear.h"

using namespace k5;

namespace {

double best_seconds(int repeat, const std::function<void()>& body) {
  body();  // warm-up: primitive creation, page faults
  double best = 1e30;
  for (int i = 0; i < repeat; ++i) {
    const auto start = std::chrono::steady_clock::now();
    body();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

Tensor random_tensor(DType dtype, Shape shape) {
  Tensor t = Tensor::empty(DType::F32, std::move(shape));
  std::mt19937 generator(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = normal(generator);
  return t.to(dtype);
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int repeat = argc > 2 ? std::atoi(argv[2]) : 3;
  const bool quick = argc > 3 && std::strcmp(argv[3], "quick") == 0;
  Context ctx({.threads = threads, .precision = Precision::bf16});
  std::printf("peak fp32 %.1f\npeak bf16 %.1f\n", bench::peak_fp32_gflops(threads), bench::peak_bf16_gflops(threads));

  struct GemmShape {
    int64_t m, k, n;
  };
  std::vector<GemmShape> gemms = {{1024, 1792, 1792}, {1024, 1792, 7168},  {1024, 7168, 1792},
                                  {4096, 1792, 7168}, {4096, 2560, 10240}, {4096, 4096, 4096},
                                  {16384, 1792, 1792}};
  if (quick) gemms.resize(2);
  for (const auto& [m, k, n] : gemms) {
    for (DType dtype : {DType::F32, DType::BF16}) {
      // Same dtypes as the PyTorch side: F32 x F32, or BF16 activations x BF16 weights.
      Tensor x = random_tensor(dtype, {m, k}), w = random_tensor(dtype, {n, k});
      Tensor out = Tensor::empty(DType::F32, {m, n});
      const double seconds = best_seconds(repeat, [&] { ops::linear(ctx, x, w, nullptr, out); });
      std::printf("k5 gemm_m%ld_k%ld_n%ld %s %.6f %.1f\n", long(m), long(k), long(n),
                  dtype == DType::F32 ? "fp32" : "bf16", seconds, 2.0 * m * n * k / seconds / 1e9);
      std::fflush(stdout);
    }
  }

  struct AttentionShape {
    int64_t tokens, heads, dim;
  };
  std::vector<AttentionShape> attentions = {{4096, 4, 64}, {4096, 2, 128}, {16384, 1, 64}, {16384, 1, 128}};
  if (quick) attentions.resize(1);
  Context fp32_ctx({.threads = threads, .precision = Precision::fp32});
  for (const auto& [tokens, heads, dim] : attentions) {
    Tensor q = random_tensor(DType::F32, {tokens, heads, dim}), k = random_tensor(DType::F32, {tokens, heads, dim});
    Tensor v = random_tensor(DType::F32, {tokens, heads, dim}), out = Tensor::empty(DType::F32, {tokens, heads, dim});
    // bf16 mode: BF16 tile products with float32 softmax and accumulation; fp32 mode: float32 throughout.
    for (Context* mode : {&fp32_ctx, &ctx}) {
      const double seconds = best_seconds(repeat, [&] { ops::attention(*mode, q, k, v, out); });
      std::printf("k5 attention_n%ld_h%ld_d%ld %s %.6f %.1f\n", long(tokens), long(heads), long(dim),
                  precision_name(mode->precision()), seconds, 4.0 * tokens * tokens * dim * heads / seconds / 1e9);
      std::fflush(stdout);
    }
  }
  // NABLA: block-sparse attention keeping ~10% of the 64x64 blocks (the diagonal plus a random 9%) against
  // dense attention at the same shape, both in bf16 mode.
  {
    const int64_t tokens = quick ? 4096 : 16384, heads = 2, dim = 64, blocks = tokens / 64;
    Tensor q = random_tensor(DType::F32, {tokens, heads, dim}), k = random_tensor(DType::F32, {tokens, heads, dim});
    Tensor v = random_tensor(DType::F32, {tokens, heads, dim}), out = Tensor::empty(DType::F32, {tokens, heads, dim});
    Tensor mask = Tensor::empty(DType::U8, {heads, blocks, blocks});
    std::mt19937 generator(7);
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    int64_t kept = 0;
    for (int64_t i = 0; i < mask.numel(); ++i) {
      const bool diagonal = (i / blocks) % blocks == i % blocks;
      kept += mask.data<uint8_t>()[i] = diagonal || uniform(generator) < 0.09f;
    }
    const double dense = best_seconds(repeat, [&] { ops::attention(ctx, q, k, v, out); });
    const double sparse = best_seconds(repeat, [&] { ops::block_sparse_attention(ctx, q, k, v, mask, 64, out); });
    std::printf("nabla tokens %ld kept %.3f dense %.4f s sparse %.4f s speedup %.2f\n", long(tokens),
                double(kept) / double(mask.numel()), dense, sparse, dense / sparse);
  }
  return 0;
}
