// k5 side of bench/run_qwen_decode.sh: greedy decoding speed of the Qwen2.5-VL language model (with lm_head)
// through the library's `generate`, plus the machine's memory bandwidth measured in the same process.
//   bench_qwen_decode MODEL.safetensors PROMPT_IDS.txt bf16|int8 THREADS NEW_TOKENS [REPEAT]
// PROMPT_IDS.txt: whitespace-separated token ids. After one warm-up generate(1) (the first touch of mapped
// weights), prefill = best of REPEAT generate(max_new_tokens = 1), full = best of REPEAT generate(NEW_TOKENS);
// decode time per token = (full - prefill) / (NEW_TOKENS - 1): one decoder pass over the cached prompt plus
// lm_head, which is what every generated token after the first costs. Bytes per token = every projection
// weight (and its int8 scales / bias) plus lm_head, each read once per token. Prints `k5_* VALUE` lines.
//
//   bench_qwen_decode gemv THREADS [ROWS] [REPEAT]
// Kernel micro-benchmark: ROWS (default 1) activation rows times the 7B shapes' largest projections
// (up/gate [18944, 3584] and down [3584, 18944]) with BF16 and int8 weights through ops::linear /
// ops::linear_int8; GB/s of weight bytes streamed, best of REPEAT (default 20) calls, against the read-sum
// bandwidth measured in the same process.
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
#include "ops/linear.h"
#include "ops/linear_int8.h"

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

// Best seconds of `repeat` calls of `call`, after one warm-up call.
template <typename Call>
double best_seconds(int repeat, Call&& call) {
  call();
  double best = std::numeric_limits<double>::max();
  for (int r = 0; r < repeat; ++r) {
    const double start = now();
    call();
    best = std::min(best, now() - start);
  }
  return best;
}

int gemv_benchmark(int threads, int64_t rows, int repeat) {
  std::printf("k5_memory_bandwidth_gbs %.2f\n", memory_bandwidth(threads, size_t(1.5e9), 5));
  Context ctx({.threads = threads, .precision = Precision::bf16, .log_level = LogLevel::quiet});
  uint64_t state = 0x9e3779b97f4a7c15ull;
  auto next = [&] {  // xorshift: cheap fill of 100+ MB of weights
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (const auto& [n, k] : {std::pair<int64_t, int64_t>{18944, 3584}, {3584, 18944}}) {
    std::vector<float> x_values(size_t(rows * k));
    for (float& v : x_values) v = float(int64_t(next() % 2001) - 1000) / 1000.0f;
    const Tensor x = Tensor::from_f32(x_values, {rows, k});
    Tensor out = Tensor::empty(DType::F32, {rows, n});
    Tensor bf16 = Tensor::empty(DType::BF16, {n, k});
    uint16_t* w = bf16.data<uint16_t>();
    for (int64_t i = 0; i < n * k; ++i) w[i] = f32_to_bf16(float(int64_t(next() % 255) - 127) / 4096.0f);
    const double bf16_seconds = best_seconds(repeat, [&] { ops::linear(ctx, x, bf16, nullptr, out); });
    bf16 = Tensor();
    ops::Int8Weight int8{Tensor::empty(DType::I8, {n, k}), Tensor::empty(DType::F32, {n})};
    int8_t* q = int8.values.data<int8_t>();
    for (int64_t i = 0; i < n * k; ++i) q[i] = int8_t(int64_t(next() % 255) - 127);
    for (int64_t i = 0; i < n; ++i) int8.scales.data<float>()[i] = 1.0f / 4096.0f;
    const double int8_seconds = best_seconds(repeat, [&] { ops::linear_int8(ctx, x, int8, nullptr, out); });
    const double bf16_bytes = double(n * k * 2), int8_bytes = double(n * k + n * 4);
    std::printf("k5_gemv_%lldx%lld_rows%lld bf16 %.3f ms %.2f GB/s, int8 %.3f ms %.2f GB/s\n",
                static_cast<long long>(n), static_cast<long long>(k), static_cast<long long>(rows),
                bf16_seconds * 1e3, bf16_bytes / bf16_seconds / 1e9, int8_seconds * 1e3, int8_bytes / int8_seconds / 1e9);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[1]) == "gemv")
    return gemv_benchmark(std::atoi(argv[2]), argc > 3 ? std::atol(argv[3]) : 1, argc > 4 ? std::atoi(argv[4]) : 20);
  if (argc < 6) {
    std::fprintf(stderr,
                 "usage: bench_qwen_decode MODEL.safetensors PROMPT_IDS.txt bf16|int8 THREADS NEW_TOKENS [REPEAT]\n"
                 "       bench_qwen_decode gemv THREADS [ROWS] [REPEAT]\n");
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
