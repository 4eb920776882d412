// The CUDA attention kernels at one of the models' shapes, in Precision::bf16 (BF16 products, float32 softmax and
// accumulation): every tensor-core kernel k5 has for it (K5_CUDA_ATTENTION=wgmma|wgmma-serial|mma|wmma), best of REPEAT
// after a warm-up. TFLOP/s counts 4 L^2 D H per dense call, the kept fraction of that for NABLA. A call is what
// the DiT pays: the op on float32 q, k, v [L, H, D] (strided views in the model), so it includes their rounding
// to BF16 copies (and V's transposition for wgmma) and the float32 output: by arithmetic ~1% of the time here;
// PyTorch starts from BF16 [1, H, L, D] tensors.
// bench/torch_cuda_attention.py times PyTorch's scaled_dot_product_attention at the same shape.
//
//   bench_cuda_attention TOKENS HEADS DIM [REPEAT] [KEEP]   KEEP < 1: NABLA keeping ~KEEP of the 64x64 blocks
// One line per kernel: `k5 attention TOKENS HEADS DIM KEEP KERNEL SECONDS TFLOPS`.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "core/context.h"
#include "core/error.h"
#include "ops/attention.h"
#ifdef K5_WITH_CUDA
#include "backends/cuda/device.h"
#endif

using namespace k5;

int main(int argc, char** argv) {
#ifndef K5_WITH_CUDA
  (void)argc;
  (void)argv;
  std::fprintf(stderr, "bench_cuda_attention: this k5 was built without CUDA\n");
  return 1;
#else
  if (argc < 4) {
    std::fprintf(stderr, "usage: bench_cuda_attention TOKENS HEADS DIM [REPEAT] [KEEP]\n");
    return 2;
  }
  const int64_t tokens = std::atol(argv[1]), heads = std::atol(argv[2]), dim = std::atol(argv[3]);
  const int repeat = argc > 4 ? std::atoi(argv[4]) : 5;
  const double keep = argc > 5 ? std::atof(argv[5]) : 1.0;
  if (cuda::device_count() == 0) {
    std::fprintf(stderr, "bench_cuda_attention: no CUDA device\n");
    return 1;
  }
  try {
    Context ctx({.threads = 1, .device = Device::CUDA, .precision = Precision::bf16, .log_level = LogLevel::quiet});
    // Uniform values in [-1.7, 1.7) (unit variance) from a 64-bit LCG: the Pro shape has 600 M of them.
    uint64_t state = 1;
    const auto random_gpu_tensor = [&](Shape shape) {
      Tensor t = Tensor::empty(DType::F32, std::move(shape));
      for (int64_t i = 0; i < t.numel(); ++i) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        t.data<float>()[i] = (float(state >> 40) / float(1 << 24) - 0.5f) * 3.4641f;
      }
      return t.to_device(Device::CUDA);
    };
    const Tensor q = random_gpu_tensor({tokens, heads, dim}), k = random_gpu_tensor({tokens, heads, dim});
    const Tensor v = random_gpu_tensor({tokens, heads, dim});
    Tensor out = Tensor::empty(DType::F32, {tokens, heads, dim}, Device::CUDA);

    // NABLA: the diagonal plus random blocks, ~keep of them in all.
    const int64_t blocks = (tokens + 63) / 64;
    Tensor mask = Tensor::empty(DType::U8, {heads, blocks, blocks});
    std::mt19937 generator(7);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    int64_t kept = 0;
    for (int64_t i = 0; i < mask.numel(); ++i)
      kept += mask.data<uint8_t>()[i] = (i / blocks) % blocks == i % blocks || uniform(generator) < keep;
    const Tensor gpu_mask = mask.to_device(Device::CUDA);
    const bool sparse = keep < 1.0;
    const double kept_fraction = sparse ? double(kept) / double(mask.numel()) : 1.0;

    const auto run = [&] {
      if (sparse)
        ops::block_sparse_attention(ctx, q, k, v, gpu_mask, 64, out);
      else
        ops::attention(ctx, q, k, v, out);
      cuda::synchronize();
    };
    for (const char* kernel : {"wgmma", "wgmma-serial", "mma", "wmma"}) {
      setenv("K5_CUDA_ATTENTION", kernel, 1);
      try {
        run();  // warm-up (and: can this kernel run here?)
      } catch (const Error& e) {
        std::printf("k5 attention %s: %s\n", kernel, e.what());
        continue;
      }
      double best = 1e30;
      for (int i = 0; i < repeat; ++i) {
        const auto start = std::chrono::steady_clock::now();
        run();
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      const double flop = 4.0 * double(tokens) * double(tokens) * double(dim) * double(heads) * kept_fraction;
      std::printf("k5 attention %ld %ld %ld %.3f %s %.6f %.1f\n", long(tokens), long(heads), long(dim), kept_fraction,
                  kernel, best, flop / best / 1e12);
      std::fflush(stdout);
    }
  } catch (const Error& error) {
    std::fprintf(stderr, "bench_cuda_attention: %s\n", error.what());
    return 1;
  }
  return 0;
#endif
}
