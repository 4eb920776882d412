// Qwen2.5-VL generation against transformers' generate (tests/golden/qwen_generate, tools/golden/qwen_generate.py),
// shared by the CPU test (qwen_generate_test.cpp) and the GPU test (backends/cuda/text_encoders_test.cpp): each
// check takes the Context and a model loaded on its device; the results come back to the host.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "models/qwen25vl/qwen_generate.h"
#include "models/qwen25vl/qwen_text_model.h"
#include "ops/linear.h"
#include "pipelines/torch_random.h"
#include "support/compare.h"
#include "support/context.h"
#include "support/model_folder.h"

namespace k5::test {

// fp32 against transformers' logits; the cached forward against the uncached one (the same sums).
constexpr double kGenerateLogitsTolerance = 1e-4;
constexpr double kKvCacheTolerance = 1e-5;

inline std::string generate_golden(const std::string& name) {
  return source_path("tests/golden/qwen_generate/" + name);
}

inline const nlohmann::json& generate_cases() {
  static const nlohmann::json json = [] {
    std::ifstream in(generate_golden("cases.json"));
    return nlohmann::json::parse(in);
  }();
  return json;
}

inline const nlohmann::json& generate_case(const std::string& name) {
  for (const auto& entry : generate_cases()["generate"])
    if (entry["name"] == name) return entry;
  throw std::runtime_error("no generate case " + name);
}

inline std::vector<int32_t> ids_of(const nlohmann::json& json) { return json.get<std::vector<int32_t>>(); }

inline std::vector<int32_t> generate_prompt() { return ids_of(generate_cases()["prompt"]); }

inline Tensor generate_expected(const std::string& name) {
  return SafetensorsFile::open(generate_golden("expected.safetensors"))->tensor(name);
}

// The tiny generation model (hidden 32, 2 layers, GQA 4/2, mrope_section [1, 1, 2], vocab 512) with lm_head.
inline QwenTextModel load_generate_model(Context& ctx, Device device, QwenWeights weights = QwenWeights::f32) {
  return QwenTextModel::load(ctx, generate_golden("weights.safetensors"), generate_golden("config.json"), weights, true,
                             device);
}

inline GenerationConfig greedy_config() {
  GenerationConfig config;
  config.eos_token_ids = {517};  // outside the vocabulary: never produced
  return config;
}

// torch.multinomial on torch's CPU generator after torch.manual_seed(seed), as the golden ran generate.
inline std::vector<int32_t> sample_tokens(Context& ctx, const QwenTextModel& model, const GenerationConfig& config,
                                          uint64_t seed = 42) {
  TorchMultinomial multinomial(RngDevice::cpu, seed);
  return generate(ctx, model, generate_prompt(), config, 24,
                  [&](std::span<const float> probs) { return multinomial.sample(probs); });
}

inline std::vector<float> row_of(const Tensor& tensor, int64_t index) {
  return tensor.select(0, index).to_f32_vector();
}

// The prompt and the greedy continuation repeated to 150 ids: past the KV cache's first capacity (64 rows).
inline std::vector<int32_t> long_generate_ids() {
  std::vector<int32_t> ids = generate_prompt();
  for (const int32_t t : ids_of(generate_case("greedy")["tokens"])) ids.push_back(t);
  std::vector<int32_t> many;
  for (int i = 0; i < 150; ++i) many.push_back(ids[size_t(i) % ids.size()]);
  return many;
}

inline void check_greedy_generation(Context& ctx, const QwenTextModel& model) {
  const std::vector<int32_t> prompt = generate_prompt();
  const std::vector<int32_t> tokens = ids_of(generate_case("greedy")["tokens"]);
  EXPECT_EQ(generate(ctx, model, prompt, greedy_config(), 24), tokens);

  // Each step's raw logits, teacher-forced on the golden tokens through the KV cache (on the model's device).
  const Tensor logits = generate_expected("greedy.logits");
  QwenKvCache cache;
  Tensor hidden = model.forward_cached(ctx, model.embed(prompt), text_positions(0, int64_t(prompt.size())), cache);
  EXPECT_EQ(hidden.device(), Device::CPU);
  ASSERT_FALSE(cache.keys.empty());
  EXPECT_EQ(cache.keys[0].device(), model.device());
  EXPECT_EQ(cache.values.back().device(), model.device());
  for (int64_t step = 0; step < int64_t(tokens.size()); ++step) {
    const Tensor actual = model.logits(ctx, hidden.slice(0, hidden.size(0) - 1, hidden.size(0)));
    EXPECT_EQ(actual.device(), Device::CPU);
    EXPECT_LE(relative_l2(actual.to_f32_vector(), row_of(logits, step)), kGenerateLogitsTolerance) << "step " << step;
    hidden = model.forward_cached(ctx, model.embed({tokens[size_t(step)]}),
                                  text_positions(int64_t(prompt.size()) + step, 1), cache);
  }
  EXPECT_EQ(cache.length, int64_t(prompt.size() + tokens.size()));
}

// The 7B's generation_config.json: sampling with top_k 1 (deterministic), repetition penalty 1.05; its eos ids
// lie outside the tiny vocabulary, so all 24 tokens are generated. The penalty changes token 17 on.
inline void check_qwen_generation_config(Context& ctx, const QwenTextModel& model) {
  const GenerationConfig config = GenerationConfig::from_json_file(generate_golden("generation_config.json"));
  const std::vector<int32_t> tokens = ids_of(generate_case("qwen_config")["tokens"]);
  EXPECT_NE(tokens, ids_of(generate_case("greedy")["tokens"]));
  EXPECT_EQ(sample_tokens(ctx, model, config), tokens);
  EXPECT_EQ(sample_tokens(ctx, model, config, 12345), tokens);  // top_k 1: any draw picks the same token
}

inline void check_repetition_penalty_and_eos(Context& ctx, const QwenTextModel& model) {
  const std::vector<int32_t> prompt = generate_prompt();
  GenerationConfig penalty = greedy_config();
  penalty.repetition_penalty = 1.3;
  EXPECT_EQ(generate(ctx, model, prompt, penalty, 24), ids_of(generate_case("penalty")["tokens"]));

  const auto& eos_case = generate_case("eos");
  GenerationConfig eos = greedy_config();
  eos.eos_token_ids = ids_of(eos_case["config"]["eos_token_id"]);
  const std::vector<int32_t> tokens = ids_of(eos_case["tokens"]);
  ASSERT_EQ(tokens.size(), 10u);  // stopped at the eos id, which is kept
  EXPECT_EQ(generate(ctx, model, prompt, eos, 24), tokens);
  EXPECT_EQ(generate(ctx, model, prompt, greedy_config(), 5), std::vector<int32_t>(tokens.begin(), tokens.begin() + 5));
}

// transformers' generate after torch.manual_seed(42): temperature 1.3 over the whole vocabulary, and
// temperature + top-k + top-p + repetition penalty; torch.multinomial's CPU stream reproduced.
inline void check_sampling_token_for_token(Context& ctx, const QwenTextModel& model) {
  for (const std::string name : {"sample", "sample_filtered"}) {
    const auto& c = generate_case(name);
    GenerationConfig config = greedy_config();
    config.do_sample = true;
    config.temperature = c["config"]["temperature"];
    config.top_k = c["config"]["top_k"];
    config.top_p = c["config"]["top_p"];
    config.repetition_penalty = c["config"].value("repetition_penalty", 1.0);
    const std::vector<int32_t> tokens = ids_of(c["tokens"]);
    EXPECT_EQ(sample_tokens(ctx, model, config), tokens) << name;
    EXPECT_NE(sample_tokens(ctx, model, config, 7), tokens) << name;  // another seed, another text
  }
}

inline void check_kv_cached_decoding(Context& ctx, const QwenTextModel& model) {
  std::vector<int32_t> ids = generate_prompt();
  for (const int32_t t : ids_of(generate_case("greedy")["tokens"])) ids.push_back(t);
  const int64_t L = int64_t(ids.size());
  const Tensor uncached = model.forward(ctx, ids);

  // Chunks of 7, 1, 1, 13, then single tokens.
  QwenKvCache cache;
  std::vector<float> cached;
  int64_t done = 0;
  for (const int64_t chunk : {int64_t(7), int64_t(1), int64_t(1), int64_t(13)}) {
    const std::vector<int32_t> piece(ids.begin() + done, ids.begin() + done + chunk);
    const auto v = model.forward_cached(ctx, model.embed(piece), text_positions(done, chunk), cache).to_f32_vector();
    cached.insert(cached.end(), v.begin(), v.end());
    done += chunk;
  }
  for (; done < L; ++done) {
    const auto v =
        model.forward_cached(ctx, model.embed({ids[size_t(done)]}), text_positions(done, 1), cache).to_f32_vector();
    cached.insert(cached.end(), v.begin(), v.end());
  }
  EXPECT_EQ(cache.length, L);
  EXPECT_LE(relative_l2(cached, uncached.to_f32_vector()), kKvCacheTolerance);

  // Growth past the first capacity keeps the cached rows.
  QwenKvCache long_cache;
  const std::vector<int32_t> many = long_generate_ids();
  const Tensor whole = model.forward(ctx, many);
  Tensor last;
  for (int64_t i = 0; i < 150; i += 10) {
    const std::vector<int32_t> piece(many.begin() + i, many.begin() + i + 10);
    last = model.forward_cached(ctx, model.embed(piece), text_positions(i, 10), long_cache);
  }
  EXPECT_GE(long_cache.keys[0].size(0), 150);
  EXPECT_LE(relative_l2(last.to_f32_vector(), whole.slice(0, 140, 150).to_f32_vector()), kKvCacheTolerance);
}

// The M-RoPE prompt: text, a 2x3 "image" of given embeddings, text.
struct MropePrompt {
  std::vector<int32_t> text_a, text_b;
  Tensor embeds;
  std::vector<int64_t> positions;
};

inline MropePrompt mrope_prompt(const QwenTextModel& model) {
  const auto& c = generate_cases()["mrope"];
  MropePrompt p;
  p.text_a = ids_of(c["text_a"]);
  p.text_b = ids_of(c["text_b"]);
  const Tensor image = generate_expected("mrope.image_embeds");
  const int64_t D = model.config().hidden_size, a = int64_t(p.text_a.size()), n = image.size(0);
  p.embeds = Tensor::empty(DType::F32, {a + n + int64_t(p.text_b.size()), D});
  p.embeds.slice(0, 0, a).copy_from(model.embed(p.text_a));
  p.embeds.slice(0, a, a + n).copy_from(image);
  p.embeds.slice(0, a + n, p.embeds.size(0)).copy_from(model.embed(p.text_b));
  for (const auto& r : c["positions"])
    for (const auto& v : r) p.positions.push_back(v.get<int64_t>());
  return p;
}

// Positions [3, L] of rows [begin, end).
inline std::vector<int64_t> position_columns(const std::vector<int64_t>& positions, int64_t L, int64_t begin,
                                             int64_t end) {
  std::vector<int64_t> out;
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t i = begin; i < end; ++i) out.push_back(positions[size_t(r * L + i)]);
  return out;
}

inline void check_mrope_generation(Context& ctx, const QwenTextModel& model) {
  const MropePrompt p = mrope_prompt(model);
  const int64_t L = p.embeds.size(0);
  ASSERT_EQ(L, generate_cases()["mrope"]["length"].get<int64_t>());
  const Tensor golden_logits = generate_expected("mrope.logits");

  QwenKvCache whole;
  const Tensor all = model.logits(ctx, model.forward_cached(ctx, p.embeds, p.positions, whole));
  EXPECT_LE(relative_l2(all, golden_logits), kGenerateLogitsTolerance);

  // The same through the cache in pieces that split the image span.
  QwenKvCache cache;
  for (const auto& [begin, end] : {std::pair<int64_t, int64_t>{0, 6}, {6, 7}, {7, 12}, {12, 16}}) {
    const Tensor h =
        model.forward_cached(ctx, p.embeds.slice(0, begin, end), position_columns(p.positions, L, begin, end), cache);
    const Tensor logits = model.logits(ctx, h);
    EXPECT_LE(relative_l2(logits, golden_logits.slice(0, begin, end).contiguous()), kGenerateLogitsTolerance) << begin;
  }

  // Greedy continuation at max(position) + 1 + step; the ids under the image span are placeholders.
  GenerationPrompt prompt;
  prompt.input_ids = p.text_a;
  prompt.input_ids.insert(prompt.input_ids.end(), 6, 0);
  prompt.input_ids.insert(prompt.input_ids.end(), p.text_b.begin(), p.text_b.end());
  prompt.input_embeds = p.embeds;
  prompt.position_ids = p.positions;
  const std::vector<int32_t> tokens = ids_of(generate_cases()["mrope"]["tokens"]);
  EXPECT_EQ(generate(ctx, model, prompt, greedy_config(), 24), tokens);

  const Tensor step_logits = generate_expected("mrope.step_logits");
  QwenKvCache steps;
  Tensor hidden = model.forward_cached(ctx, p.embeds, p.positions, steps);
  const int64_t next = *std::max_element(p.positions.begin(), p.positions.end()) + 1;
  for (int64_t step = 0; step < int64_t(tokens.size()); ++step) {
    const Tensor logits = model.logits(ctx, hidden.slice(0, hidden.size(0) - 1, hidden.size(0)));
    EXPECT_LE(relative_l2(logits.to_f32_vector(), row_of(step_logits, step)), kGenerateLogitsTolerance)
        << "step " << step;
    hidden = model.forward_cached(ctx, model.embed({tokens[size_t(step)]}), text_positions(next + step, 1), steps);
  }
}

// The golden weights without lm_head.weight (tie_word_embeddings), written to `path`.
inline void save_weights_without_lm_head(const std::string& path) {
  save_renamed_copy(generate_golden("weights.safetensors"), path,
                    [](const std::string& name) { return name == "lm_head.weight" ? std::string() : name; });
}

// A model loaded from those weights: logits = hidden @ embed_tokens^T (the reference computed on the host).
inline void check_tied_lm_head(Context& ctx, const QwenTextModel& model, double tolerance) {
  const Tensor hidden = model.forward(ctx, generate_prompt());
  Context host = make_context(Precision::fp32);
  const Tensor embed_tokens =
      Checkpoint::open(generate_golden("weights.safetensors")).tensor("model.language_model.embed_tokens.weight");
  EXPECT_LE(relative_l2(model.logits(ctx, hidden), ops::linear(host, hidden, embed_tokens)), tolerance);
}

// Not exact: the reduced precisions pick the fp32 argmax on at least the first tokens of this model.
inline void check_reduced_precision_follows_fp32(Context& ctx, const QwenTextModel& model) {
  const std::vector<int32_t> tokens = ids_of(generate_case("greedy")["tokens"]);
  EXPECT_EQ(generate(ctx, model, generate_prompt(), greedy_config(), 3),
            std::vector<int32_t>(tokens.begin(), tokens.begin() + 3));
}

}  // namespace k5::test
