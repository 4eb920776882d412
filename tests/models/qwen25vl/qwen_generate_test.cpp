// Qwen2.5-VL generation against transformers' generate (tools/golden/qwen_generate.py): a tiny random
// model (hidden 32, 2 layers, GQA 4/2, mrope_section [1, 1, 2], vocab 512), 24 new tokens; the chat
// template and decoding against the Qwen2.5-VL processor with the real tokenizer.
#include "models/qwen25vl/qwen_generate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/qwen25vl/qwen_generate_checks.h"
#include "support/context.h"
#include "support/model_folder.h"

namespace k5 {
namespace {

using test::generate_golden;
using test::ids_of;

QwenTextModel load_model(Context& ctx, QwenWeights weights = QwenWeights::f32) {
  return test::load_generate_model(ctx, Device::CPU, weights);
}

// One of the checks the GPU test runs too (qwen_generate_checks.h), here on the CPU in fp32.
void check_on_cpu(void (*check)(Context&, const QwenTextModel&)) {
  Context ctx = test::make_context(Precision::fp32);
  check(ctx, load_model(ctx));
}

TEST(QwenGenerate, GreedyMatchesTransformers) { check_on_cpu(test::check_greedy_generation); }

TEST(QwenGenerate, QwenGenerationConfigMatchesTransformers) {
  const GenerationConfig config = GenerationConfig::from_json_file(generate_golden("generation_config.json"));
  EXPECT_TRUE(config.do_sample);
  EXPECT_DOUBLE_EQ(config.temperature, 0.1);
  EXPECT_EQ(config.top_k, 1);
  EXPECT_DOUBLE_EQ(config.top_p, 0.001);
  EXPECT_DOUBLE_EQ(config.repetition_penalty, 1.05);
  EXPECT_EQ(config.eos_token_ids, std::vector<int32_t>({151645, 151643}));
  EXPECT_EQ(config.pad_token_id, 151643);
  EXPECT_EQ(config.bos_token_id, 151643);

  check_on_cpu(test::check_qwen_generation_config);
}

TEST(QwenGenerate, RepetitionPenaltyAndEosMatchTransformers) { check_on_cpu(test::check_repetition_penalty_and_eos); }

TEST(QwenGenerate, KvCachedDecodingEqualsUncachedForward) { check_on_cpu(test::check_kv_cached_decoding); }

TEST(QwenGenerate, MropePositionsAndEmbeddingsMatchTransformers) { check_on_cpu(test::check_mrope_generation); }

TEST(QwenGenerate, TiedEmbeddingsServeAsLmHead) {
  // A checkpoint without lm_head.weight (tie_word_embeddings): logits = hidden @ embed_tokens^T.
  Context ctx = test::make_context(Precision::fp32);
  const test::TempDir dir("qwen_tied");
  const std::string path = (dir.path / "weights.safetensors").string();
  test::save_weights_without_lm_head(path);
  const QwenTextConfig config = QwenTextConfig::from_json_file(generate_golden("config.json"));
  const QwenTextModel model = QwenTextModel::load(ctx, Checkpoint::open(path), config, QwenWeights::f32, true);
  test::check_tied_lm_head(ctx, model, 1e-6);
  const QwenTextModel encoder_only = QwenTextModel::load(ctx, generate_golden("weights.safetensors"),
                                                         generate_golden("config.json"), QwenWeights::f32);
  EXPECT_FALSE(encoder_only.has_lm_head());
  EXPECT_THROW(encoder_only.logits(ctx, model.forward(ctx, test::generate_prompt())), Error);
}

TEST(QwenGenerate, Bf16AndInt8FollowFp32) {
  for (const QwenWeights weights : {QwenWeights::bf16, QwenWeights::int8}) {
    SCOPED_TRACE(int(weights));
    Context ctx = test::make_context(Precision::bf16);
    test::check_reduced_precision_follows_fp32(ctx, load_model(ctx, weights));
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

TEST(QwenGenerate, SamplingMatchesTransformersTokenForToken) { check_on_cpu(test::check_sampling_token_for_token); }

TEST(QwenGenerate, SamplingNeedsASampler) {
  Context ctx = test::make_context(Precision::fp32);
  const QwenTextModel model = load_model(ctx);
  GenerationConfig config = test::greedy_config();
  config.do_sample = true;
  EXPECT_THROW(generate(ctx, model, test::generate_prompt(), config, 4), Error);
}

TEST(QwenChatTemplate, MatchesTheQwenProcessor) {
  // Expected strings: the Qwen2.5-VL processor's apply_chat_template with Qwen2.5-VL-7B-Instruct's
  // chat_template.json; the ids: the real tokenizer on the rendered text.
  const BpeTokenizer tokenizer = BpeTokenizer::load(test::shared_path("tokenizers/qwen2.5/tokenizer.json"));
  for (const auto& c : test::generate_cases()["chat"]) {
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
  for (const auto& c : test::generate_cases()["decode"])
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
