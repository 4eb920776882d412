// Qwen2.5-VL generation against transformers' generate (tools/golden/qwen_generate.py): a tiny random
// model (hidden 32, 2 layers, GQA 4/2, mrope_section [1, 1, 2], vocab 512), 24 new tokens; the chat
// template and decoding against the Qwen2.5-VL processor with the real tokenizer.
#include "models/qwen25vl/qwen_generate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/qwen25vl/qwen_text_model.h"
#include "ops/linear.h"
#include "pipelines/torch_random.h"
#include "support/compare.h"
#include "support/context.h"

namespace k5 {
namespace {

std::string golden(const std::string& name) { return test::source_path("tests/golden/qwen_generate/" + name); }

const nlohmann::json& cases() {
  static const nlohmann::json json = [] {
    std::ifstream in(golden("cases.json"));
    return nlohmann::json::parse(in);
  }();
  return json;
}

const nlohmann::json& generate_case(const std::string& name) {
  for (const auto& entry : cases()["generate"])
    if (entry["name"] == name) return entry;
  throw std::runtime_error("no generate case " + name);
}

std::vector<int32_t> ids_of(const nlohmann::json& json) { return json.get<std::vector<int32_t>>(); }

Tensor expected(const std::string& name) { return SafetensorsFile::open(golden("expected.safetensors"))->tensor(name); }

QwenTextModel load_model(Context& ctx, QwenWeights weights = QwenWeights::f32) {
  return QwenTextModel::load(ctx, golden("weights.safetensors"), golden("config.json"), weights, true);
}

GenerationConfig greedy() {
  GenerationConfig config;
  config.eos_token_ids = {517};  // outside the vocabulary: never produced
  return config;
}

// torch.multinomial on torch's CPU generator after torch.manual_seed(seed), as the golden ran generate.
std::vector<int32_t> sample(Context& ctx, const QwenTextModel& model, const std::vector<int32_t>& prompt,
                            const GenerationConfig& config, uint64_t seed = 42) {
  TorchMultinomial multinomial(RngDevice::cpu, seed);
  return generate(ctx, model, prompt, config, 24,
                  [&](std::span<const float> probs) { return multinomial.sample(probs); });
}

std::vector<float> row(const Tensor& tensor, int64_t index) { return tensor.select(0, index).to_f32_vector(); }

// The M-RoPE prompt: text, a 2x3 "image" of given embeddings, text.
struct MropePrompt {
  std::vector<int32_t> text_a, text_b;
  Tensor embeds;
  std::vector<int64_t> positions;
};

MropePrompt mrope_prompt(const QwenTextModel& model) {
  const auto& c = cases()["mrope"];
  MropePrompt p;
  p.text_a = ids_of(c["text_a"]);
  p.text_b = ids_of(c["text_b"]);
  const Tensor image = expected("mrope.image_embeds");
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
std::vector<int64_t> columns(const std::vector<int64_t>& positions, int64_t L, int64_t begin, int64_t end) {
  std::vector<int64_t> out;
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t i = begin; i < end; ++i) out.push_back(positions[size_t(r * L + i)]);
  return out;
}

TEST(QwenGenerate, GreedyMatchesTransformers) {
  Context ctx = test::make_context(Precision::fp32);
  const QwenTextModel model = load_model(ctx);
  const std::vector<int32_t> prompt = ids_of(cases()["prompt"]);
  const std::vector<int32_t> tokens = ids_of(generate_case("greedy")["tokens"]);
  EXPECT_EQ(generate(ctx, model, prompt, greedy(), 24), tokens);

  // Each step's raw logits (teacher-forced on the golden tokens, KV cache).
  const Tensor logits = expected("greedy.logits");
  QwenKvCache cache;
  Tensor hidden = model.forward_cached(ctx, model.embed(prompt), text_positions(0, int64_t(prompt.size())), cache);
  for (int64_t step = 0; step < int64_t(tokens.size()); ++step) {
    const Tensor actual = model.logits(ctx, hidden.slice(0, hidden.size(0) - 1, hidden.size(0)));
    EXPECT_LE(test::relative_l2(actual.to_f32_vector(), row(logits, step)), 1e-4) << "step " << step;
    hidden = model.forward_cached(ctx, model.embed({tokens[size_t(step)]}),
                                  text_positions(int64_t(prompt.size()) + step, 1), cache);
  }
  EXPECT_EQ(cache.length, int64_t(prompt.size() + tokens.size()));
}

TEST(QwenGenerate, QwenGenerationConfigMatchesTransformers) {
  // The 7B's generation_config.json: sampling with top_k 1 (deterministic), repetition penalty 1.05; its eos
  // ids lie outside the tiny vocabulary, so all 24 tokens are generated. The penalty changes token 17 on.
  const GenerationConfig config = GenerationConfig::from_json_file(golden("generation_config.json"));
  EXPECT_TRUE(config.do_sample);
  EXPECT_DOUBLE_EQ(config.temperature, 0.1);
  EXPECT_EQ(config.top_k, 1);
  EXPECT_DOUBLE_EQ(config.top_p, 0.001);
  EXPECT_DOUBLE_EQ(config.repetition_penalty, 1.05);
  EXPECT_EQ(config.eos_token_ids, std::vector<int32_t>({151645, 151643}));
  EXPECT_EQ(config.pad_token_id, 151643);
  EXPECT_EQ(config.bos_token_id, 151643);

  Context ctx = test::make_context(Precision::fp32);
  const QwenTextModel model = load_model(ctx);
  const std::vector<int32_t> prompt = ids_of(cases()["prompt"]);
  const std::vector<int32_t> tokens = ids_of(generate_case("qwen_config")["tokens"]);
  EXPECT_NE(tokens, ids_of(generate_case("greedy")["tokens"]));
  EXPECT_EQ(sample(ctx, model, prompt, config), tokens);
  EXPECT_EQ(sample(ctx, model, prompt, config, 12345), tokens);  // top_k 1: any draw picks the same token
}

TEST(QwenGenerate, RepetitionPenaltyAndEosMatchTransformers) {
  Context ctx = test::make_context(Precision::fp32);
  const QwenTextModel model = load_model(ctx);
  const std::vector<int32_t> prompt = ids_of(cases()["prompt"]);
  GenerationConfig penalty = greedy();
  penalty.repetition_penalty = 1.3;
  EXPECT_EQ(generate(ctx, model, prompt, penalty, 24), ids_of(generate_case("penalty")["tokens"]));

  const auto& eos_case = generate_case("eos");
  GenerationConfig eos = greedy();
  eos.eos_token_ids = ids_of(eos_case["config"]["eos_token_id"]);
  const std::vector<int32_t> tokens = ids_of(eos_case["tokens"]);
  ASSERT_EQ(tokens.size(), 10u);  // stopped at the eos id, which is kept
  EXPECT_EQ(generate(ctx, model, prompt, eos, 24), tokens);
  EXPECT_EQ(generate(ctx, model, prompt, greedy(), 5), std::vector<int32_t>(tokens.begin(), tokens.begin() + 5));
}

TEST(QwenGenerate, KvCachedDecodingEqualsUncachedForward) {
  Context ctx = test::make_context(Precision::fp32);
  const QwenTextModel model = load_model(ctx);
  std::vector<int32_t> ids = ids_of(cases()["prompt"]);
  for (const int32_t t : ids_of(generate_case("greedy")["tokens"])) ids.push_back(t);
  const int64_t L = int64_t(ids.size());
  const Tensor uncached = model.forward(ctx, ids);

  // Chunks of 7, 1, 1, 13, then single tokens.
  QwenKvCache cache;
  std::vector<float> cached;
  int64_t done = 0;
  for (const int64_t chunk : {int64_t(7), int64_t(1), int64_t(1), int64_t(13)}) {
    const std::vector<int32_t> piece(ids.begin() + done, ids.begin() + done + chunk);
    const Tensor h = model.forward_cached(ctx, model.embed(piece), text_positions(done, chunk), cache);
    const auto v = h.to_f32_vector();
    cached.insert(cached.end(), v.begin(), v.end());
    done += chunk;
  }
  for (; done < L; ++done) {
    const Tensor h = model.forward_cached(ctx, model.embed({ids[size_t(done)]}), text_positions(done, 1), cache);
    const auto v = h.to_f32_vector();
    cached.insert(cached.end(), v.begin(), v.end());
  }
  EXPECT_EQ(cache.length, L);
  EXPECT_LE(test::relative_l2(cached, uncached.to_f32_vector()), 1e-5);

  // Growth past the first capacity (64 rows) keeps the cached rows.
  QwenKvCache long_cache;
  std::vector<int32_t> many;
  for (int i = 0; i < 150; ++i) many.push_back(ids[size_t(i) % ids.size()]);
  const Tensor whole = model.forward(ctx, many);
  Tensor last;
  for (int64_t i = 0; i < 150; i += 10) {
    const std::vector<int32_t> piece(many.begin() + i, many.begin() + i + 10);
    last = model.forward_cached(ctx, model.embed(piece), text_positions(i, 10), long_cache);
  }
  EXPECT_LE(test::relative_l2(last.to_f32_vector(), whole.slice(0, 140, 150).to_f32_vector()), 1e-5);
}

TEST(QwenGenerate, MropePositionsAndEmbeddingsMatchTransformers) {
  Context ctx = test::make_context(Precision::fp32);
  const QwenTextModel model = load_model(ctx);
  const MropePrompt p = mrope_prompt(model);
  const int64_t L = p.embeds.size(0);
  ASSERT_EQ(L, cases()["mrope"]["length"].get<int64_t>());
  const Tensor golden_logits = expected("mrope.logits");

  QwenKvCache whole;
  const Tensor all = model.logits(ctx, model.forward_cached(ctx, p.embeds, p.positions, whole));
  EXPECT_LE(test::relative_l2(all, golden_logits), 1e-4);

  // The same through the cache in pieces that split the image span.
  QwenKvCache cache;
  for (const auto& [begin, end] : {std::pair<int64_t, int64_t>{0, 6}, {6, 7}, {7, 12}, {12, 16}}) {
    const Tensor h =
        model.forward_cached(ctx, p.embeds.slice(0, begin, end), columns(p.positions, L, begin, end), cache);
    const Tensor logits = model.logits(ctx, h);
    EXPECT_LE(test::relative_l2(logits, golden_logits.slice(0, begin, end).contiguous()), 1e-4) << begin;
  }

  // Greedy continuation at max(position) + 1 + step; the ids under the image span are placeholders.
  GenerationPrompt prompt;
  prompt.input_ids = p.text_a;
  prompt.input_ids.insert(prompt.input_ids.end(), 6, 0);
  prompt.input_ids.insert(prompt.input_ids.end(), p.text_b.begin(), p.text_b.end());
  prompt.input_embeds = p.embeds;
  prompt.position_ids = p.positions;
  const std::vector<int32_t> tokens = ids_of(cases()["mrope"]["tokens"]);
  EXPECT_EQ(generate(ctx, model, prompt, greedy(), 24), tokens);

  const Tensor step_logits = expected("mrope.step_logits");
  QwenKvCache steps;
  Tensor hidden = model.forward_cached(ctx, p.embeds, p.positions, steps);
  const int64_t next = *std::max_element(p.positions.begin(), p.positions.end()) + 1;
  for (int64_t step = 0; step < int64_t(tokens.size()); ++step) {
    const Tensor logits = model.logits(ctx, hidden.slice(0, hidden.size(0) - 1, hidden.size(0)));
    EXPECT_LE(test::relative_l2(logits.to_f32_vector(), row(step_logits, step)), 1e-4) << "step " << step;
    hidden = model.forward_cached(ctx, model.embed({tokens[size_t(step)]}), text_positions(next + step, 1), steps);
  }
}

TEST(QwenGenerate, TiedEmbeddingsServeAsLmHead) {
  // A checkpoint without lm_head.weight (tie_word_embeddings): logits = hidden @ embed_tokens^T.
  Context ctx = test::make_context(Precision::fp32);
  const Checkpoint full = Checkpoint::open(golden("weights.safetensors"));
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& name : full.names())
    if (name != "lm_head.weight") tensors.emplace_back(name, full.tensor(name));
  const std::string path = (std::filesystem::temp_directory_path() / "k5_qwen_tied.safetensors").string();
  save_safetensors(path, tensors);
  const QwenTextConfig config = QwenTextConfig::from_json_file(golden("config.json"));
  const QwenTextModel model = QwenTextModel::load(ctx, Checkpoint::open(path), config, QwenWeights::f32, true);
  std::filesystem::remove(path);
  const std::vector<int32_t> prompt = ids_of(cases()["prompt"]);
  const Tensor hidden = model.forward(ctx, prompt);
  const Tensor expected_logits = ops::linear(ctx, hidden, full.tensor("model.language_model.embed_tokens.weight"));
  EXPECT_LE(test::relative_l2(model.logits(ctx, hidden), expected_logits), 1e-6);
  const QwenTextModel encoder_only =
      QwenTextModel::load(ctx, golden("weights.safetensors"), golden("config.json"), QwenWeights::f32);
  EXPECT_FALSE(encoder_only.has_lm_head());
  EXPECT_THROW(encoder_only.logits(ctx, hidden), Error);
}

TEST(QwenGenerate, Bf16AndInt8FollowFp32) {
  // Not exact: the reduced precisions pick the fp32 argmax on at least the first tokens of this model.
  const std::vector<int32_t> prompt = ids_of(cases()["prompt"]);
  const std::vector<int32_t> tokens = ids_of(generate_case("greedy")["tokens"]);
  for (const QwenWeights weights : {QwenWeights::bf16, QwenWeights::int8}) {
    Context ctx = test::make_context(Precision::bf16);
    const QwenTextModel model = load_model(ctx, weights);
    const std::vector<int32_t> out = generate(ctx, model, prompt, greedy(), 3);
    EXPECT_EQ(out, std::vector<int32_t>(tokens.begin(), tokens.begin() + 3)) << int(weights);
  }
}

TEST(QwenGenerate, LogitsProcessorsFollowTransformers) {
  const float inf = std::numeric_limits<float>::infinity();
  GenerationConfig config;
  config.repetition_penalty = 2.0;
  std::vector<float> scores = {1.0f, -1.0f, 3.0f, 2.0f};
  process_logits(config, {0, 1, 1}, scores);  // greedy: penalty only
  EXPECT_EQ(scores, std::vector<float>({0.5f, -2.0f, 3.0f, 2.0f}));

  config = {};
  config.do_sample = true;
  config.top_k = 2;
  config.temperature = 0.5;
  scores = {1.0f, 3.0f, 3.0f, 2.0f, 3.0f};
  process_logits(config, {}, scores);  // ties with the k-th largest survive
  EXPECT_EQ(scores, std::vector<float>({-inf, 6.0f, 6.0f, -inf, 6.0f}));

  config.top_k = 0;
  config.temperature = 1.0;
  config.top_p = 0.5;
  scores = {std::log(0.1f), std::log(0.2f), std::log(0.3f), std::log(0.4f)};
  process_logits(config, {}, scores);  // cumulative ascending 0.1, 0.3, 0.6: the first two go
  EXPECT_EQ(scores[0], -inf);
  EXPECT_EQ(scores[1], -inf);
  EXPECT_GT(scores[2], -inf);
  EXPECT_GT(scores[3], -inf);

  config.top_p = 0.001;
  scores = {0.5f, 0.4f, 0.45f};
  process_logits(config, {}, scores);  // only the most likely token stays
  EXPECT_EQ(scores, std::vector<float>({0.5f, -inf, -inf}));
}

TEST(QwenGenerate, SamplingMatchesTransformersTokenForToken) {
  // transformers' generate after torch.manual_seed(42): temperature 1.3 over the whole vocabulary, and
  // temperature + top-k + top-p + repetition penalty; torch.multinomial's CPU stream reproduced.
  Context ctx = test::make_context(Precision::fp32);
  const QwenTextModel model = load_model(ctx);
  const std::vector<int32_t> prompt = ids_of(cases()["prompt"]);
  for (const std::string name : {"sample", "sample_filtered"}) {
    const auto& c = generate_case(name);
    GenerationConfig config = greedy();
    config.do_sample = true;
    config.temperature = c["config"]["temperature"];
    config.top_k = c["config"]["top_k"];
    config.top_p = c["config"]["top_p"];
    config.repetition_penalty = c["config"].value("repetition_penalty", 1.0);
    const std::vector<int32_t> tokens = ids_of(c["tokens"]);
    EXPECT_EQ(sample(ctx, model, prompt, config), tokens) << name;
    EXPECT_NE(sample(ctx, model, prompt, config, 7), tokens) << name;  // another seed, another text
  }
}

TEST(QwenGenerate, SamplingNeedsASampler) {
  Context ctx = test::make_context(Precision::fp32);
  const QwenTextModel model = load_model(ctx);
  GenerationConfig config = greedy();
  config.do_sample = true;
  EXPECT_THROW(generate(ctx, model, ids_of(cases()["prompt"]), config, 4), Error);
}

TEST(QwenChatTemplate, MatchesTheQwenProcessor) {
  // Expected strings: the Qwen2.5-VL processor's apply_chat_template with Qwen2.5-VL-7B-Instruct's
  // chat_template.json; the ids: the real tokenizer on the rendered text.
  const BpeTokenizer tokenizer = BpeTokenizer::load(test::shared_path("tokenizers/qwen2.5/tokenizer.json"));
  for (const auto& c : cases()["chat"]) {
    ChatMessage message{"user", {}};
    if (c["content"].is_string()) {
      message.content.push_back(ChatContent::of_text(c["content"].get<std::string>()));
    } else {
      for (const auto& piece : c["content"])
        message.content.push_back(piece["type"] == "image" ? ChatContent::image()
                                                           : ChatContent::of_text(piece["text"].get<std::string>()));
    }
    const std::string rendered = render_chat({message});
    EXPECT_EQ(rendered, c["rendered"].get<std::string>()) << c["name"];
    EXPECT_EQ(tokenizer.encode(rendered), ids_of(c["ids"])) << c["name"];
  }
  EXPECT_EQ(render_chat({{"system", {ChatContent::of_text("Be brief.")}}, {"user", {ChatContent::of_text("hi")}}}),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(QwenChatTemplate, DecodeSkipsSpecialTokensLikeTransformers) {
  const BpeTokenizer tokenizer = BpeTokenizer::load(test::shared_path("tokenizers/qwen2.5/tokenizer.json"));
  for (const auto& c : cases()["decode"])
    EXPECT_EQ(decode_generated(tokenizer, ids_of(c["ids"])), c["text"].get<std::string>());
  for (const std::string text : {"A red fox, 3 cats & 2 dogs.", "Портрет кота в шляпе — акварель",
                                 "emoji 🎩🦊👩‍👩‍👧 中文 ✓\n\ttabs  and  spaces "}) {
    EXPECT_EQ(decode_generated(tokenizer, tokenizer.encode(text)), text);
    std::vector<int32_t> ids = tokenizer.encode("<|im_start|>assistant\n" + text + "<|im_end|>");
    EXPECT_EQ(decode_generated(tokenizer, ids), "assistant\n" + text);
  }
}

}  // namespace
}  // namespace k5
