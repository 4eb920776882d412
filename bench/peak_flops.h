// The machine's arithmetic peak, measured: independent FMA (or VDPBF16PS) chains in registers, on every
// thread at once. Benchmarks report their fraction of it.
#pragma once

namespace k5::bench {

double peak_fp32_gflops(int threads);
double peak_bf16_gflops(int threads);  // 0 when the CPU has no AVX512-BF16

}  // namespace k5::bench
