// The VAE's causal 3x3x3 convolution at decoder shapes: im2col + SGEMM vs oneDNN's convolution primitive
// (K5_CONV picks the path at start-up, so each path is a separate run of this binary):
//   K5_CONV=im2col ./bench_vae_conv ; K5_CONV=dnnl ./bench_vae_conv
// Reports GFLOP/s (2 * MACs) so the paths compare directly.
#include <benchmark/benchmark.h>

#include "core/context.h"
#include "ops/conv.h"

namespace {

void BM_CausalConv3d(benchmark::State& state) {
  const int64_t channels = state.range(0), frames = state.range(1), size = state.range(2);
  k5::Context ctx({.threads = int(state.range(3)), .precision = k5::Precision::fp32});
  k5::Tensor x = k5::Tensor::empty(k5::DType::F32, {channels, frames, size, size});
  k5::Tensor w = k5::Tensor::empty(k5::DType::F32, {channels, channels, 3, 3, 3});
  k5::Tensor b = k5::Tensor::empty(k5::DType::F32, {channels});
  float* xs = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) xs[i] = float(i % 17) * 0.01f;
  float* ws = w.data<float>();
  for (int64_t i = 0; i < w.numel(); ++i) ws[i] = float(i % 13) * 0.001f;
  const auto geometry = k5::ops::causal_conv_geometry(3, 3, 3);
  k5::Tensor out = k5::Tensor::empty(k5::DType::F32, k5::ops::conv3d_output_shape(x.shape(), w.shape(), geometry));
  for (auto _ : state) {
    k5::ops::conv3d(ctx, x, w, &b, geometry, out);
    benchmark::DoNotOptimize(out.raw());
  }
  const double flops = 2.0 * double(channels * channels * 27) * double(frames * size * size);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// {channels, frames, height = width, threads}: the decoder's levels for a 16x2x16x16 latent.
BENCHMARK(BM_CausalConv3d)
    ->Args({512, 2, 32, 2})
    ->Args({256, 3, 64, 2})
    ->Args({128, 5, 128, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
