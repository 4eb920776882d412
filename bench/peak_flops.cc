#include <immintrin.h>

#include <chrono>
#include <thread>
#include <vector>

#include "bench/peak_flops.h"
#include "core/cpu_features.h"

namespace k5::bench {

namespace {

constexpr long kIterations = 20'000'000;

// 10 independent accumulators hide the FMA latency (4 cycles x 2 pipes).
__attribute__((target("avx2,fma"))) float fma_chains() {
  __m256 a[10];
  for (int i = 0; i < 10; ++i) a[i] = _mm256_set1_ps(float(i));
  const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (long n = 0; n < kIterations; ++n)
    for (int i = 0; i < 10; ++i) a[i] = _mm256_fmadd_ps(a[i], b, c);
  __m256 sum = a[0];
  for (int i = 1; i < 10; ++i) sum = _mm256_add_ps(sum, a[i]);
  return _mm256_cvtss_f32(sum);
}

__attribute__((target("avx512f,avx512bf16"))) float bf16_chains() {
  __m512 a[10];
  for (int i = 0; i < 10; ++i) a[i] = _mm512_set1_ps(float(i));
  const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3f80);
  for (long n = 0; n < kIterations; ++n)
    for (int i = 0; i < 10; ++i) a[i] = _mm512_dpbf16_ps(a[i], b, b);
  __m512 sum = a[0];
  for (int i = 1; i < 10; ++i) sum = _mm512_add_ps(sum, a[i]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  float total = 0;
  for (float lane : lanes) total += lane;
  return total;
}

double run_on_threads(int threads, float (*chains)(), double flops_per_thread) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  volatile float sink = 0;
  for (int t = 0; t < threads; ++t) workers.emplace_back([&] { sink = sink + chains(); });
  for (auto& worker : workers) worker.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return flops_per_thread * threads / seconds / 1e9;
}

}  // namespace

double peak_fp32_gflops(int threads) {
  return run_on_threads(threads, fma_chains, double(kIterations) * 10 * 8 * 2);
}

double peak_bf16_gflops(int threads) {
  if (!cpu_features().avx512_bf16) return 0;
  // Each VDPBF16PS lane does 2 multiply-adds: 16 lanes x 2 x 2 FLOP.
  return run_on_threads(threads, bf16_chains, double(kIterations) * 10 * 16 * 4);
}

}  // namespace k5::bench
