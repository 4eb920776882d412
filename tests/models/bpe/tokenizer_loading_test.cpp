// Loading paths and error handling of the BPE tokenizers, and `k5 tokenize`. The alternative file forms
// (vocab.json + merges.txt, "a b" merges) are written from the real Qwen tokenizer.json and must give the
// ids of the golden-checked original.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/bpe/bpe_tokenizer.h"
#include "models/bpe/clip_tokenizer.h"
#include "models/bpe/kandinsky_prompt.h"
#include "models/bpe/tokenizer_paths.h"
#include "support/compare.h"

namespace k5 {
namespace {

namespace fs = std::filesystem;

std::string qwen_path() { return test::shared_path("tokenizers/qwen2.5/tokenizer.json"); }

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("k5_bpe_test_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary);
  file << text;
}

const std::vector<std::string> kSamples = {
    "Hello, world!  It's   a test.\n\nNew paragraph\twith tabs 12345",
    "<|im_start|>user\nКот сидит на окне 🐈‍⬛ 猫<|im_end|>",
    "e\u0301 cafe\u0301 don'T 'LL",
};

TEST(BpeTokenizerLoading, AlternativeFileFormsGiveTheSameIds) {
  if (!fs::exists(qwen_path())) GTEST_SKIP() << "no " << qwen_path();
  const BpeTokenizer reference = BpeTokenizer::load(qwen_path());
  std::ifstream file(qwen_path(), std::ios::binary);
  nlohmann::json json = nlohmann::json::parse(file);

  // vocab.json + merges.txt + tokenizer_config.json's added_tokens_decoder.
  const fs::path dir = fresh_dir("vocab_files");
  write_text(dir / "vocab.json", json["model"]["vocab"].dump());
  std::string merges = "#version: 0.2\n";
  for (const auto& merge : json["model"]["merges"])
    merges += merge[0].get<std::string>() + " " + merge[1].get<std::string>() + "\n";
  write_text(dir / "merges.txt", merges);
  nlohmann::json config;
  for (const auto& token : json["added_tokens"])
    config["added_tokens_decoder"][std::to_string(token["id"].get<int>())] = {{"content", token["content"]},
                                                                              {"special", token["special"]}};
  write_text(dir / "tokenizer_config.json", config.dump());
  const BpeTokenizer from_files = BpeTokenizer::load(dir.string());

  // tokenizer.json with "a b" string merges.
  nlohmann::json string_merges = nlohmann::json::array();
  for (const auto& merge : json["model"]["merges"])
    string_merges.push_back(merge[0].get<std::string>() + " " + merge[1].get<std::string>());
  json["model"]["merges"] = string_merges;
  const fs::path json_dir = fresh_dir("string_merges");
  write_text(json_dir / "tokenizer.json", json.dump());
  const BpeTokenizer from_string_merges = BpeTokenizer::load(json_dir.string());

  for (const auto& text : kSamples) {
    EXPECT_EQ(from_files.encode(text), reference.encode(text)) << text;
    EXPECT_EQ(from_string_merges.encode(text), reference.encode(text)) << text;
  }
  EXPECT_EQ(from_files.token_id("<|image_pad|>"), reference.token_id("<|image_pad|>"));
  EXPECT_EQ(from_files.vocab_size(), reference.vocab_size());
  fs::remove_all(dir);
  fs::remove_all(json_dir);
}

TEST(BpeTokenizerLoading, MissingFilesNameWhatWasLookedFor) {
  const fs::path dir = fresh_dir("empty");
  try {
    BpeTokenizer::load(dir.string());
    FAIL() << "no error";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("tokenizer.json or vocab.json + merges.txt"), std::string::npos);
  }
  EXPECT_THROW(BpeTokenizer::load((dir / "nope.json").string()), Error);
  EXPECT_THROW(ClipTokenizer::load(dir.string()), Error);
  EXPECT_THROW(find_qwen_tokenizer(dir.string()), Error);
  EXPECT_THROW(find_clip_tokenizer((dir / "missing").string()), Error);
  fs::remove_all(dir);
}

TEST(BpeTokenizerLoading, CorruptFilesAreErrors) {
  const fs::path dir = fresh_dir("corrupt");
  write_text(dir / "tokenizer.json", "{\"model\": {\"vocab\": ");
  EXPECT_THROW(BpeTokenizer::load(dir.string()), Error);
  // A vocabulary without the byte-level symbols.
  write_text(dir / "tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  EXPECT_THROW(BpeTokenizer::load(dir.string()), Error);
  // Added tokens that absorb white space are refused rather than tokenised differently.
  nlohmann::json tiny = {
      {"model", {{"type", "BPE"}, {"vocab", nlohmann::json::object()}, {"merges", nlohmann::json::array()}}}};
  for (int b = 0; b < 256; ++b) tiny["model"]["vocab"][bpe::byte_to_unicode(uint8_t(b))] = b;
  tiny["added_tokens"] = {{{"id", 256}, {"content", "<x>"}, {"lstrip", true}}};
  write_text(dir / "tokenizer.json", tiny.dump());
  EXPECT_THROW(BpeTokenizer::load(dir.string()), Error);
  tiny["added_tokens"][0]["lstrip"] = false;
  write_text(dir / "tokenizer.json", tiny.dump());
  EXPECT_EQ(BpeTokenizer::load(dir.string()).encode("a<x>"), (std::vector<int32_t>{'a', 256}));
  // A GPT-2 style pre-tokenizer (no Split, ByteLevel with use_regex) is refused, not run with Qwen's regex.
  tiny["pre_tokenizer"] = {{"type", "ByteLevel"}, {"use_regex", true}};
  write_text(dir / "tokenizer.json", tiny.dump());
  EXPECT_THROW(BpeTokenizer::load(dir.string()), Error);
  // A vocabulary that is not an object; a merge line without two tokens.
  const fs::path clip_dir = fresh_dir("clip_corrupt");
  write_text(clip_dir / "vocab.json", "[1, 2]");
  write_text(clip_dir / "merges.txt", "#version: 0.2\na b\n");
  EXPECT_THROW(ClipTokenizer::load(clip_dir.string()), Error);
  write_text(clip_dir / "merges.txt", "#version: 0.2\nnospace\n");
  EXPECT_THROW(ClipTokenizer::load(clip_dir.string()), Error);
  fs::remove_all(dir);
  fs::remove_all(clip_dir);
}

TEST(BpeTokenizerLoading, BadInputIsAnError) {
  const ClipTokenizer clip = ClipTokenizer::load(test::source_path("tests/golden/tokenizers/clip"));
  EXPECT_THROW(clip.encode("abc\xff"), Error);
  EXPECT_THROW(clip.encode("\xe4\xbd"), Error);  // truncated sequence
  EXPECT_THROW(clip.encode_padded("x", 1), Error);
  EXPECT_THROW(clip.decode({1 << 30}, false), Error);
  EXPECT_THROW(parse_prompt_content("movie"), Error);
  if (!fs::exists(qwen_path())) return;
  const BpeTokenizer qwen = BpeTokenizer::load(qwen_path());
  EXPECT_THROW(qwen.encode("\xc0\xaf"), Error);  // overlong encoding
  EXPECT_THROW(qwen.decode({-1}, false), Error);
  EXPECT_THROW(encode_kandinsky_prompt(qwen, "x", PromptContent::video, 0), Error);
  // Truncation keeps the template and the start of the prompt; the mask counts real tokens.
  const QwenPrompt prompt = encode_kandinsky_prompt(qwen, std::string(4000, 'a') + " b", PromptContent::video, 16);
  EXPECT_EQ(prompt.ids.size(), size_t(129 + 16));
  EXPECT_EQ(prompt.text_mask(), std::vector<uint8_t>(16, 1));
}

std::string run_k5(const std::string& arguments, int& status) {
  const std::string command = std::string(K5_BINARY) + " tokenize " + arguments + " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  status = ::pclose(pipe);
  return output;
}

std::string json_line(const std::vector<int32_t>& ids) { return nlohmann::json(ids).dump() + "\n"; }

TEST(TokenizeCommand, PrintsIdsAndMask) {
  const std::string clip_dir = test::source_path("tests/golden/tokenizers/clip");
  const ClipTokenizer clip = ClipTokenizer::load(clip_dir);
  int status = 0;
  EXPECT_EQ(run_k5("--model-dir " + clip_dir + " --encoder clip 'A red fox, jumping!'", status),
            json_line(clip.encode("A red fox, jumping!")));
  EXPECT_EQ(status, 0);
  // The official layout: text_encoder2/ inside a model folder.
  const fs::path model = fresh_dir("model");
  fs::create_directories(model / "text_encoder2");
  fs::copy(clip_dir, model / "text_encoder2");
  const auto padded = clip.encode_padded("A red fox");
  EXPECT_EQ(run_k5("--model-dir " + model.string() + " --encoder clip --pad 'A red fox'", status),
            json_line(padded.ids) + nlohmann::json(padded.mask).dump() + "\n");
  EXPECT_EQ(status, 0);
  // Missing tokenizer: one line naming the places looked at, non-zero exit.
  const std::string missing = run_k5("--model-dir " + model.string() + " --encoder qwen x", status);
  EXPECT_NE(status, 0);
  EXPECT_NE(missing.find("text_encoder/tokenizer.json"), std::string::npos) << missing;
  EXPECT_EQ(std::count(missing.begin(), missing.end(), '\n'), 1) << missing;
  if (fs::exists(qwen_path())) {
    fs::create_directories(model / "text_encoder");
    fs::copy_file(qwen_path(), model / "text_encoder" / "tokenizer.json");
    const BpeTokenizer qwen = BpeTokenizer::load(qwen_path());
    const QwenPrompt prompt = encode_kandinsky_prompt(qwen, "A red fox", PromptContent::image, 512);
    EXPECT_EQ(run_k5("--model-dir " + model.string() + " --encoder qwen --template image --pad 'A red fox'", status),
              json_line(prompt.ids) + nlohmann::json(prompt.mask).dump() + "\n");
    EXPECT_EQ(run_k5("--model-dir " + model.string() + " --encoder qwen 'A red fox'", status),
              json_line(qwen.encode("A red fox")));
  }
  fs::remove_all(model);
}

}  // namespace
}  // namespace k5
