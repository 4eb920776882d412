// Exact token-id parity of k5's BPE tokenizers with the Hugging Face references on the golden corpus
// (tools/golden/tokenizers.py): Qwen2.5 against `tokenizers`, CLIP against transformers' CLIPTokenizer.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/bpe/bpe_tokenizer.h"
#include "models/bpe/clip_tokenizer.h"
#include "models/bpe/kandinsky_prompt.h"
#include "models/bpe/unicode_text.h"
#include "support/compare.h"

namespace k5 {
namespace {

nlohmann::json load_json(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  EXPECT_TRUE(file.good()) << path;
  return nlohmann::json::parse(file);
}

std::string qwen_path() { return test::shared_path("tokenizers/qwen2.5/tokenizer.json"); }

class TokenizerCorpus : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    corpus_ = new nlohmann::json(load_json(test::source_path("tests/golden/tokenizers/corpus.json")));
    clip_ = new ClipTokenizer(ClipTokenizer::load(test::source_path("tests/golden/tokenizers/clip")));
    if (std::filesystem::exists(qwen_path())) qwen_ = new BpeTokenizer(BpeTokenizer::load(qwen_path()));
  }
  static void TearDownTestSuite() {
    delete corpus_;
    delete clip_;
    delete qwen_;
  }
  void SetUp() override {
    if (!qwen_) GTEST_SKIP() << "no Qwen tokenizer at " << qwen_path();
  }
  static nlohmann::json* corpus_;
  static ClipTokenizer* clip_;
  static BpeTokenizer* qwen_;
};
nlohmann::json* TokenizerCorpus::corpus_ = nullptr;
ClipTokenizer* TokenizerCorpus::clip_ = nullptr;
BpeTokenizer* TokenizerCorpus::qwen_ = nullptr;

std::vector<int32_t> ids_of(const nlohmann::json& array) { return array.get<std::vector<int32_t>>(); }

std::string fnv1a(const std::vector<int32_t>& ids) {
  uint64_t hash = 0xCBF29CE484222325ull;
  for (const int32_t id : ids)
    for (int b = 0; b < 4; ++b) hash = (hash ^ ((uint32_t(id) >> (8 * b)) & 0xFF)) * 0x100000001B3ull;
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

// Minimal RFC 4180 reader (quoted fields, doubled quotes, newlines inside quotes).
std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  const std::string data((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::vector<std::vector<std::string>> rows(1);
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < data.size(); ++i) {
    const char c = data[i];
    if (quoted) {
      if (c == '"' && i + 1 < data.size() && data[i + 1] == '"')
        field.push_back('"'), ++i;
      else if (c == '"')
        quoted = false;
      else
        field.push_back(c);
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().push_back(std::move(field)), field.clear();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < data.size() && data[i + 1] == '\n') ++i;
      rows.back().push_back(std::move(field)), field.clear();
      rows.emplace_back();
    } else {
      field.push_back(c);
    }
  }
  if (!field.empty() || !rows.back().empty()) rows.back().push_back(field);
  if (rows.back().empty()) rows.pop_back();
  return rows;
}

TEST_F(TokenizerCorpus, QwenIdsMatchTokenizersLibrary) {
  size_t mismatches = 0;
  const auto& strings = (*corpus_)["strings"];
  ASSERT_GE(strings.size(), 500u);
  for (const auto& entry : strings) {
    const std::string text = entry["text"];
    const std::vector<int32_t> ids = qwen_->encode(text);
    if (ids != ids_of(entry["qwen"]) && ++mismatches <= 10)
      ADD_FAILURE() << "Qwen ids differ for " << nlohmann::json(text).dump();
  }
  EXPECT_EQ(mismatches, 0u) << "of " << strings.size();
}

TEST_F(TokenizerCorpus, QwenDecodeRoundTrips) {
  for (const auto& entry : (*corpus_)["strings"]) {
    const std::string text = entry["text"];
    EXPECT_EQ(qwen_->decode(ids_of(entry["qwen"]), false), bpe::nfc(text)) << nlohmann::json(text).dump();
  }
  const auto im_start = qwen_->token_id("<|im_start|>");
  ASSERT_TRUE(im_start.has_value());
  EXPECT_EQ(*im_start, 151644);
  EXPECT_EQ(qwen_->decode(qwen_->encode("<|im_start|>user\nhi<|im_end|>"), true), "user\nhi");
}

TEST_F(TokenizerCorpus, ClipIdsMatchTransformers) {
  size_t mismatches = 0;
  const auto& strings = (*corpus_)["strings"];
  for (const auto& entry : strings) {
    const std::string text = entry["text"];
    if (clip_->encode(text) != ids_of(entry["clip"]) && ++mismatches <= 10)
      ADD_FAILURE() << "CLIP ids differ for " << nlohmann::json(text).dump();
  }
  EXPECT_EQ(mismatches, 0u) << "of " << strings.size();
}

TEST_F(TokenizerCorpus, ClipPaddedAsTheOfficialEmbedder) {
  EXPECT_EQ(clip_->bos_id(), 49406);
  EXPECT_EQ(clip_->eos_id(), 49407);
  EXPECT_EQ(clip_->pad_id(), 49407);
  for (const auto& entry : (*corpus_)["clip_padded"]) {
    const std::string text = entry["text"];
    const ClipTokenizer::Encoding encoding = clip_->encode_padded(text, 77);
    EXPECT_EQ(encoding.ids, ids_of(entry["ids"])) << text;
    EXPECT_EQ(encoding.mask, entry["mask"].get<std::vector<uint8_t>>()) << text;
  }
  EXPECT_EQ(clip_->decode(clip_->encode_padded("A Cat, sitting!").ids, true), "a cat , sitting !");
}

TEST_F(TokenizerCorpus, MovieGenExpandedPromptsMatch) {
  const std::string csv_path = test::shared_path("k5-official/benchmark/moviegen_bench.csv");
  if (!std::filesystem::exists(csv_path)) GTEST_SKIP() << "no " << csv_path;
  const auto rows = read_csv(csv_path);
  ASSERT_GT(rows.size(), 1u);
  const auto& header = rows[0];
  size_t checked = 0;
  for (const auto& entry : (*corpus_)["moviegen"]) {
    const size_t column =
        size_t(std::find(header.begin(), header.end(), entry["column"].get<std::string>()) - header.begin());
    const size_t row = entry["row"].get<size_t>() + 1;
    ASSERT_LT(row, rows.size());
    ASSERT_LT(column, rows[row].size());
    const std::string& text = rows[row][column];
    ASSERT_EQ(text.size(), entry["text_bytes"].get<size_t>()) << "CSV parsing differs at row " << row;
    const auto qwen_ids = qwen_->encode(text);
    EXPECT_EQ(qwen_ids.size(), entry["qwen_length"].get<size_t>()) << "row " << row << " " << entry["column"];
    EXPECT_EQ(fnv1a(qwen_ids), entry["qwen_fnv1a"].get<std::string>()) << "row " << row << " " << entry["column"];
    const auto clip_ids = clip_->encode(text);
    EXPECT_EQ(clip_ids.size(), entry["clip_length"].get<size_t>()) << "row " << row << " " << entry["column"];
    EXPECT_EQ(fnv1a(clip_ids), entry["clip_fnv1a"].get<std::string>()) << "row " << row << " " << entry["column"];
    ++checked;
  }
  EXPECT_EQ(checked, 2006u);
}

TEST_F(TokenizerCorpus, KandinskyPromptsMatchTheOfficialCall) {
  const auto& cases = (*corpus_)["kandinsky"];
  ASSERT_EQ(cases.size(), 20u);
  for (const auto& entry : cases) {
    const PromptContent content = parse_prompt_content(entry["content"].get<std::string>());
    const std::string prompt = entry["prompt"];
    const QwenPrompt encoded = encode_kandinsky_prompt(*qwen_, prompt, content, entry["max_length"].get<int>());
    EXPECT_EQ(encoded.crop_start, entry["crop_start"].get<int>());
    EXPECT_EQ(encoded.ids, ids_of(entry["ids"])) << entry["content"] << " " << prompt;
    EXPECT_EQ(encoded.mask, entry["mask"].get<std::vector<uint8_t>>()) << entry["content"] << " " << prompt;
  }
}

TEST_F(TokenizerCorpus, KandinskyImageEditWithImages) {
  const auto& cases = (*corpus_)["kandinsky_images"];
  ASSERT_EQ(cases.size(), 2u);
  for (const auto& entry : cases) {
    const std::string prompt = entry["prompt"];
    const QwenPrompt encoded = encode_kandinsky_prompt(*qwen_, prompt, PromptContent::image_edit, 512,
                                                       entry["image_token_counts"].get<std::vector<int>>());
    EXPECT_EQ(encoded.ids, ids_of(entry["ids"])) << prompt;
    EXPECT_EQ(encoded.mask, entry["mask"].get<std::vector<uint8_t>>()) << prompt;
  }
  EXPECT_THROW(encode_kandinsky_prompt(*qwen_, "x", PromptContent::video, 256, {4}), Error);
  EXPECT_THROW(encode_kandinsky_prompt(*qwen_, "x", PromptContent::image_edit, 512, {0}), Error);
}

TEST_F(TokenizerCorpus, CropStartIsTheTemplatePrefixLength) {
  for (const PromptContent content :
       {PromptContent::video, PromptContent::image, PromptContent::image2video, PromptContent::image_edit}) {
    const std::string& text_template = kandinsky_prompt_template(content);
    const size_t prefix_tokens = qwen_->encode(text_template.substr(0, text_template.find("{}"))).size();
    // The official image_edit crop (55) is 3 tokens longer than its prefix (52): it also drops the first
    // 3 prompt tokens. k5 reproduces the official value.
    const size_t expected = content == PromptContent::image_edit ? 52 : size_t(kandinsky_crop_start(content));
    EXPECT_EQ(prefix_tokens, expected) << prompt_content_name(content);
  }
}

TEST_F(TokenizerCorpus, ConcurrentEncodesShareTheWordCache) {
  const auto& strings = (*corpus_)["strings"];
  const BpeTokenizer fresh = BpeTokenizer::load(qwen_path());
  std::vector<std::thread> threads;
  std::vector<size_t> mismatches(4, 0);
  for (size_t t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (size_t i = t; i < strings.size(); i += 2)  // overlapping halves: the same words from two threads
        if (fresh.encode(strings[i]["text"].get<std::string>()) != ids_of(strings[i]["qwen"])) ++mismatches[t];
    });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<size_t>(4, 0));
}

TEST_F(TokenizerCorpus, LongPromptEncodesFast) {
  const std::string text = (*corpus_)["strings"].back()["text"];
  const auto load_start = std::chrono::steady_clock::now();
  const BpeTokenizer cold = BpeTokenizer::load(qwen_path());  // empty word cache
  const double load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - load_start).count();
  const auto start = std::chrono::steady_clock::now();
  const auto ids = cold.encode(text);
  const double cold_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(ids.size(), 2000u);
  EXPECT_LT(cold_ms, 50.0) << ids.size() << " tokens";
  const auto clip_load_start = std::chrono::steady_clock::now();
  const ClipTokenizer clip = ClipTokenizer::load(test::source_path("tests/golden/tokenizers/clip"));
  const auto clip_start = std::chrono::steady_clock::now();
  const auto clip_ids = clip.encode(text);
  const auto clip_end = std::chrono::steady_clock::now();
  const double clip_ms = std::chrono::duration<double, std::milli>(clip_end - clip_start).count();
  EXPECT_LT(clip_ms, 50.0) << clip_ids.size() << " tokens";
  std::printf(
      "[ timing ] Qwen: load %.0f ms, encode of %zu tokens (cold cache) %.2f ms; CLIP: load %.0f ms, "
      "encode of %zu tokens (cold cache) %.2f ms\n",
      load_ms, ids.size(), cold_ms, std::chrono::duration<double, std::milli>(clip_start - clip_load_start).count(),
      clip_ids.size(), clip_ms);
}

}  // namespace
}  // namespace k5
