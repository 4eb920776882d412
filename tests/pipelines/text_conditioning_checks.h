// Text conditioning against the official Kandinsky5TextEmbedder.encode (tests/golden/encode_text,
// tools/golden/encode_text.py), shared by the CPU test (text_conditioning_test.cpp) and the GPU test
// (backends/cuda/text_encoders_test.cpp): each takes the Context and the encoders loaded on its device.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "pipelines/text_conditioning.h"
#include "support/compare.h"
#include "support/model_folder.h"

namespace k5::test {

inline std::string encode_text_golden(const std::string& name) {
  return source_path("tests/golden/encode_text/" + name);
}

// A temporary official-layout model folder: <dir>/<subdir>/text_encoder{,2}/, rebuilt from the golden (which
// keeps only the embedding rows its cases use).
struct EncodeTextFolder {
  TempDir temp{"encode_text"};
  std::filesystem::path dir = temp.path;
  std::filesystem::path root;
  explicit EncodeTextFolder(const std::string& subdir = "") : root(dir / subdir) {
    write_text_encoders(encode_text_golden(""), "weights.safetensors", root);
  }
  TextEncoderPaths paths() const { return TextEncoderPaths::find(root.string()); }
};

struct EncodeTextCase {
  std::string name, content, prompt, negative;
  int max_length = 0;
};

inline std::vector<EncodeTextCase> encode_text_cases() {
  std::ifstream in(encode_text_golden("cases.json"));
  const auto json = nlohmann::json::parse(in);
  std::vector<EncodeTextCase> out;
  for (const auto& c : json)
    out.push_back({c["name"], c["content"], c["prompt"], c["negative"], c["max_length"].get<int>()});
  return out;
}

inline Tensor encode_text_expected(const std::string& name) {
  return SafetensorsFile::open(encode_text_golden("expected.safetensors"))->tensor(name);
}

// The golden embedding `prefix` (<case>. or <case>.null_): F32 host tensors within `tolerance`, the mask exact.
inline void expect_golden_embedding(const PromptEmbedding& actual, const std::string& prefix, double tolerance) {
  SCOPED_TRACE(prefix);
  EXPECT_EQ(actual.text_embed.dtype(), DType::F32);
  EXPECT_EQ(actual.attention_mask.dtype(), DType::U8);
  EXPECT_EQ(actual.text_embed.device(), Device::CPU);
  EXPECT_EQ(actual.pooled_text_embed.device(), Device::CPU);
  EXPECT_LE(relative_l2(actual.text_embed, encode_text_expected(prefix + "text_embed").to(DType::F32)), tolerance);
  EXPECT_LE(relative_l2(actual.pooled_text_embed, encode_text_expected(prefix + "pooled_text_embed").to(DType::F32)),
            tolerance);
  const Tensor mask = encode_text_expected(prefix + "attention_mask");
  ASSERT_EQ(actual.attention_mask.shape(), mask.shape());
  EXPECT_EQ(actual.attention_mask.to_f32_vector(), mask.to_f32_vector());
}

// Every case's prompt and negative prompt.
inline void check_official_embedder(Context& ctx, const TextEncoders& encoders, double tolerance) {
  for (const EncodeTextCase& c : encode_text_cases()) {
    const TextConditioning conditioning =
        encode_text_conditioning(ctx, encoders, c.prompt, c.negative, parse_prompt_content(c.content), c.max_length);
    // The official default keeps the padded length: L = max_length whatever the prompt's length.
    EXPECT_EQ(conditioning.prompt.text_embed.shape(), (Shape{c.max_length, 16}));
    EXPECT_EQ(conditioning.negative.pooled_text_embed.shape(), (Shape{1, 16}));
    expect_golden_embedding(conditioning.prompt, c.name + ".", tolerance);
    expect_golden_embedding(conditioning.negative, c.name + ".null_", tolerance);
  }
}

// BF16 weights and activations on random weights: a loose bound on the first case, the fp32 mode is the parity
// mode.
inline void check_bf16_embedding(Context& ctx, const TextEncoders& encoders, double tolerance) {
  const EncodeTextCase c = encode_text_cases().front();
  const PromptEmbedding embedding =
      encode_prompt(ctx, encoders, c.prompt, parse_prompt_content(c.content), c.max_length);
  EXPECT_LE(relative_l2(embedding.text_embed, encode_text_expected(c.name + ".text_embed").to(DType::F32)), tolerance);
  EXPECT_LE(
      relative_l2(embedding.pooled_text_embed, encode_text_expected(c.name + ".pooled_text_embed").to(DType::F32)),
      tolerance);
}

// `k5 encode-text` writes the forward-sample inputs of the video and image cases; they use their content's
// default negative prompt, so --negative is left out.
inline void check_encode_text_cli(const K5Cli& cli, const std::string& model_dir) {
  const std::string out = cli.path("encoded.safetensors");
  for (const EncodeTextCase& c : encode_text_cases()) {
    if (c.name != "video" && c.name != "image") continue;
    SCOPED_TRACE(c.name);
    ASSERT_EQ(c.negative, default_negative_prompt(parse_prompt_content(c.content)));
    ASSERT_EQ(cli.run("encode-text --model-dir " + model_dir + " --prompt " + shell_quoted(c.prompt) + " --content " +
                      c.content + " -o " + out + " --precision fp32"),
              0)
        << cli.err();
    const auto file = SafetensorsFile::open(out);
    expect_golden_embedding(
        {file->tensor("text_embed"), file->tensor("pooled_text_embed"), file->tensor("attention_mask")}, c.name + ".",
        1e-4);
    expect_golden_embedding(
        {file->tensor("null_text_embed"), file->tensor("null_pooled_text_embed"), file->tensor("null_attention_mask")},
        c.name + ".null_", 1e-4);
  }
}

}  // namespace k5::test
