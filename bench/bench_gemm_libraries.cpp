// Which GEMM library k5 uses on the CPU: oneDNN vs OpenBLAS (both from Debian) at DiT shapes, fp32 (and BF16,
// which only oneDNN has) as x[M, K] * W[N, K]^T (PyTorch's weight layout). Prints GFLOP/s per library; bench/results/gemm-library.md
// records the outcome.
//   bench_gemm_libraries [threads]
#include <cblas.h>
#include <dnnl.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "backends/cpu/onednn_matmul.h"
#include "core/dtype.h"

namespace {

double best_gflops(double flops, const std::function<void()>& body) {
  body();
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    body();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return flops / best / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  std::printf("OpenBLAS: %s (core %s)\n", openblas_get_config(), openblas_get_corename());
  struct Shape {
    int m, k, n;
  };
  for (const Shape& s : {Shape{1024, 1792, 1792}, Shape{1024, 1792, 7168}, Shape{4096, 1792, 7168},
                         Shape{4096, 2560, 10240}}) {
    std::vector<float> x(size_t(s.m) * s.k, 0.5f), w(size_t(s.n) * s.k, 0.25f), out(size_t(s.m) * s.n);
    std::vector<uint16_t> x16(x.size()), w16(w.size());
    k5::convert_from_f32(x.data(), x16.data(), k5::DType::BF16, x.size());
    k5::convert_from_f32(w.data(), w16.data(), k5::DType::BF16, w.size());
    const double flops = 2.0 * s.m * s.n * s.k;
    const double dnnl_f32 = best_gflops(flops, [&] {
      dnnl_sgemm('N', 'T', s.m, s.n, s.k, 1.0f, x.data(), s.k, w.data(), s.k, 0.0f, out.data(), s.n);
    });
    const double blas_f32 = best_gflops(flops, [&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.m, s.n, s.k, 1.0f, x.data(), s.k, w.data(), s.k, 0.0f,
                  out.data(), s.n);
    });
    const double dnnl_bf16 = best_gflops(flops, [&] {
      k5::cpu::matmul_bf16({.m = s.m, .n = s.n, .k = s.k, .a = x16.data(), .lda = s.k, .b = w16.data(), .ldb = s.k,
                            .b_transposed = true, .c = out.data(), .ldc = s.n});
    });
    // Debian's OpenBLAS is built without BFLOAT16 (no cblas_sbgemm), so only oneDNN offers a BF16 GEMM.
    std::printf("M=%d K=%d N=%d  fp32: oneDNN %.0f OpenBLAS %.0f GFLOP/s   bf16: oneDNN %.0f GFLOP/s\n", s.m, s.k,
                s.n, dnnl_f32, blas_f32, dnnl_bf16);
    std::fflush(stdout);
  }
}
