// k5 side of bench/run_dit.sh: one CrossDiT forward (batch 1, latent [T, H, W], L text tokens), best of REPEAT.
//   bench_dit CONFIG.yaml DIT.safetensors T H W L fp32|bf16|int8 THREADS REPEAT [auto|dense|nabla] [cpu|cuda] [INPUTS]
// Prints `k5 dit PRECISION TOKENS SECONDS` (on cuda the time includes copying the latent over and back); int8 is
// bf16 with the blocks' GEMM weights quantised at load (--weights-int8).
// A DIT path that does not exist is first written with random BF16 weights in the official layout (for a
// machine with no checkpoint at hand, e.g. the GPU machine). With L > 100 the text is padded as the official
// encoder pads it (max_length 256: a key mask marks the first 100 tokens real). INPUTS, when given, receives the
// random inputs in the `k5 forward dit` layout, so that bench/torch_dit_official.py runs the same forward.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "core/system_memory.h"
#include "io/safetensors.h"
#include "models/crossdit/crossdit.h"
#include "models/crossdit/random_weights.h"

using namespace k5;

namespace {

constexpr int64_t kRealTextTokens = 100;  // a typical prompt's length in Qwen tokens

Tensor random_tensor(Shape shape, uint32_t seed) {
  Tensor t = Tensor::empty(DType::F32, std::move(shape));
  std::mt19937 generator(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = normal(generator);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 10) {
    std::fprintf(
        stderr,
        "usage: bench_dit CONFIG DIT T H W L fp32|bf16|int8 THREADS REPEAT [auto|dense|nabla] [cpu|cuda] [INPUTS]\n");
    return 2;
  }
  try {
    const KandinskyConfig config = load_kandinsky_config(argv[1]);
    const int64_t t = std::atol(argv[3]), h = std::atol(argv[4]), w = std::atol(argv[5]), l = std::atol(argv[6]);
    const bool int8_weights = std::string(argv[7]) == "int8";
    const Precision precision = int8_weights ? Precision::bf16 : parse_precision(argv[7]);
    const int threads = std::atoi(argv[8]), repeat = std::atoi(argv[9]);
    const DitAttention attention = argc > 10 ? parse_dit_attention(argv[10]) : DitAttention::automatic;
    const Device device = argc > 11 && std::string(argv[11]) == "cuda" ? Device::CUDA : Device::CPU;
    Context ctx({.threads = threads, .device = device, .precision = precision, .log_level = LogLevel::quiet});
    if (!std::filesystem::exists(argv[2]))
      save_safetensors(argv[2], random_crossdit_weights(config.dit, DType::BF16, 0, ctx.pool()));
    const CrossDit dit = CrossDit::load(config, argv[2], precision, attention, device, {}, int8_weights);
    const int64_t weights_bytes = device_memory(device).allocated;
    DitInputs inputs;
    inputs.x = random_tensor({t, h, w, config.dit.input_channels()}, 1);
    inputs.text_embed = random_tensor({l, config.dit.in_text_dim}, 2);
    inputs.pooled_text_embed = random_tensor({1, config.dit.in_text_dim2}, 3);
    inputs.time = 500.0f;
    if (l > kRealTextTokens) {
      inputs.attention_mask = Tensor::zeros(DType::U8, {l});
      std::fill_n(inputs.attention_mask.data<uint8_t>(), kRealTextTokens, uint8_t(1));
    }
    if (argc > 12) {
      Tensor time = Tensor::empty(DType::F32, {1});
      time.data<float>()[0] = inputs.time;
      std::vector<std::pair<std::string, Tensor>> saved{{"x", inputs.x}, {"text_embed", inputs.text_embed},
                                                        {"pooled_text_embed", inputs.pooled_text_embed}, {"time", time}};
      if (inputs.attention_mask.defined()) saved.emplace_back("attention_mask", inputs.attention_mask.reshape({1, l}));
      save_safetensors(argv[12], saved);
    }
    dit.forward(ctx, inputs);  // warm-up: page faults on the mapped weights, primitive creation
    double best = 1e30;
    for (int i = 0; i < repeat; ++i) {
      const auto start = std::chrono::steady_clock::now();
      dit.forward(ctx, inputs);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::printf("k5 dit %s %ld %.4f\n", argv[7], long(t * (h / 2) * (w / 2)), best);
    if (device == Device::CUDA)
      std::printf("k5 dit GPU memory weights %.2f GiB, peak %.2f GiB\n", double(weights_bytes) / (1 << 30),
                  double(device_memory(Device::CUDA).peak) / (1 << 30));
  } catch (const Error& error) {
    std::fprintf(stderr, "bench_dit: %s\n", error.what());
    return 1;
  }
  return 0;
}
