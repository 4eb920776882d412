// k5 side of bench/run_qwen_decode.sh: greedy decoding speed of the Qwen2.5-VL language model (with lm_head)
// through the library's `generate`, plus the machine's memory bandwidth measured in the same process.
//   bench_qwen_decode MODEL.safetensors PROMPT_IDS.txt bf16|int8 THREADS NEW_TOKENS [REPEAT]
// PROMPT_IDS.txt: whitespace-separated token ids. After one warm-up generate(1) (the first touch of mapped
// weights), prefill = best of REPEAT generate(max_new_tokens = 1), full = best of REPEAT generate(NEW_TOKENS);
// decode time per token = (full - prefill) / (NEW_TOKENS - 1): one decoder pass over the cached prompt plus
// lm_head, which is what every generated token after the first costs. Bytes per token = every projection
// weight (and its int8 scales / bias) plus lm_head, each read once per token. Prints `k5_* VALUE` lines.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "models/qwen25vl/qwen_generate.h"

using namespace k5;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Multi-threaded read-sum over a `bytes` buffer (each thread its contiguous slice, first-touched by that
// thread); best of `runs`. Returns GB/s (1e9 bytes).
double memory_bandwidth(int threads, size_t bytes, int runs) {
  const size_t n = bytes / sizeof(uint64_t);
  std::unique_ptr<uint64_t[]> buffer(new uint64_t[n]);
  uint64_t* data = buffer.get();
  auto parallel = [&](auto&& body) {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] { body(n * size_t(t) / size_t(threads), n * size_t(t + 1) / size_t(threads), t); });
    for (auto& thread : pool) thread.join();
  };
  parallel([&](size_t begin, size_t end, int) {
    for (size_t i = begin; i < end; ++i) data[i] = i;
  });
  std::vector<uint64_t> sums(size_t(threads) * 8);  // one cache line apart
  double best = std::numeric_limits<double>::max();
  for (int r = 0; r < runs; ++r) {
    const double start = now();
    parallel([&](size_t begin, size_t end, int t) {
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      size_t i = begin;
      for (; i + 4 <= end; i += 4) {
        s0 += data[i];
        s1 += data[i + 1];
        s2 += data[i + 2];
        s3 += data[i + 3];
      }
      for (; i < end; ++i) s0 += data[i];
      sums[size_t(t) * 8] = s0 + s1 + s2 + s3;
    });
    best = std::min(best, now() - start);
  }
  uint64_t total = 0;
  for (int t = 0; t < threads; ++t) total += sums[size_t(t) * 8];
  if (total != uint64_t(n) * uint64_t(n - 1) / 2) std::fprintf(stderr, "bandwidth: wrong sum\n");
  return double(n * sizeof(uint64_t)) / best / 1e9;
}

// Bytes read per decoded token: every projection (weights, int8 scales, biases) and lm_head, once.
double bytes_per_token(const QwenTextConfig& c, QwenWeights weights) {
  const double D = double(c.hidden_size), F = double(c.intermediate_size), hd = double(c.head_dim);
  const double q = double(c.num_attention_heads) * hd, kv = double(c.num_key_value_heads) * hd;
  const double element = weights == QwenWeights::int8 ? 1.0 : 2.0;
  const double scale = weights == QwenWeights::int8 ? 4.0 : 0.0;  // F32 per output row
  auto linear = [&](double n, double k, bool bias) { return n * k * element + n * scale + (bias ? 4.0 * n : 0.0); };
  const double layer = linear(q, D, true) + 2 * linear(kv, D, true) + linear(D, q, false) + 2 * linear(F, D, false) +
                       linear(D, F, false) + 2 * 4.0 * D;
  return double(c.num_hidden_layers) * layer + linear(double(c.vocab_size), D, false) + 4.0 * D;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: bench_qwen_decode MODEL.safetensors PROMPT_IDS.txt bf16|int8 THREADS NEW_TOKENS [REPEAT]\n");
    return 2;
  }
  try {
    const std::string model_path = argv[1], weights_name = argv[3];
    const int threads = std::atoi(argv[4]);
    const int64_t new_tokens = std::atol(argv[5]);
    const int repeat = argc > 6 ? std::atoi(argv[6]) : 2;
    if (weights_name != "bf16" && weights_name != "int8") throw std::runtime_error("weights must be bf16 or int8");
    if (new_tokens < 2) throw std::runtime_error("NEW_TOKENS must be >= 2");
    const QwenWeights weights = weights_name == "int8" ? QwenWeights::int8 : QwenWeights::bf16;
    std::vector<int32_t> prompt;
    {
      std::ifstream in(argv[2]);
      for (int64_t id; in >> id;) prompt.push_back(int32_t(id));
    }
    if (prompt.empty()) throw std::runtime_error(std::string("no ids in ") + argv[2]);

    const double bandwidth = memory_bandwidth(threads, size_t(1.5e9), 5);
    std::printf("k5_memory_bandwidth_gbs %.2f\n", bandwidth);

    Context ctx({.threads = threads, .precision = Precision::bf16, .log_level = LogLevel::quiet});
    double start = now();
    const QwenTextModel model = QwenTextModel::load(ctx, model_path, "", weights, /*with_lm_head=*/true);
    std::printf("k5_load_seconds %.2f\n", now() - start);

    GenerationConfig config;  // greedy, no eos: always NEW_TOKENS tokens
    config.do_sample = false;
    generate(ctx, model, prompt, config, 1);  // warm-up: first touch of the mapped weights
    double prefill = std::numeric_limits<double>::max(), full = prefill;
    std::vector<int32_t> ids;
    for (int r = 0; r < repeat; ++r) {
      start = now();
      generate(ctx, model, prompt, config, 1);
      prefill = std::min(prefill, now() - start);
      start = now();
      ids = generate(ctx, model, prompt, config, new_tokens);
      full = std::min(full, now() - start);
    }
    if (int64_t(ids.size()) != new_tokens) throw std::runtime_error("generate stopped early");
    const double per_token = (full - prefill) / double(new_tokens - 1);
    const double bytes = bytes_per_token(model.config(), weights);
    std::printf("k5_prompt_tokens %zu\n", prompt.size());
    std::printf("k5_new_tokens %lld\n", static_cast<long long>(new_tokens));
    std::printf("k5_prefill_seconds %.4f\n", prefill);
    std::printf("k5_generate_seconds %.4f\n", full);
    std::printf("k5_decode_seconds_per_token %.5f\n", per_token);
    std::printf("k5_decode_tokens_per_s %.3f\n", 1.0 / per_token);
    std::printf("k5_weight_gb_per_token %.4f\n", bytes / 1e9);
    std::printf("k5_decode_gbs %.2f\n", bytes / per_token / 1e9);
    std::printf("k5_ids");
    for (const int32_t id : ids) std::printf(" %d", id);
    std::printf("\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_qwen_decode: %s\n", e.what());
    return 1;
  }
  return 0;
}
