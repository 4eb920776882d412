// Text conditioning (src/pipelines/text_conditioning, `k5 encode-text`) against the official
// Kandinsky5TextEmbedder.encode run on tiny random Qwen2.5-VL / CLIP models with the real tokenizers
// (tools/golden/encode_text.py). The golden keeps only the embedding rows the cases use; the test rebuilds
// the official model-folder layout (text_encoder/, text_encoder2/) in a temporary folder from them.
#include "pipelines/text_conditioning.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "io/safetensors.h"
#include "support/compare.h"
#include "support/context.h"
#include "support/model_folder.h"

namespace k5 {
namespace {

namespace fs = std::filesystem;

std::string golden(const std::string& name) { return test::source_path("tests/golden/encode_text/" + name); }

// A temporary official-layout model folder: <dir>/<subdir>/text_encoder{,2}/.
struct ModelFolder {
  test::TempDir temp{"encode_text"};
  fs::path dir = temp.path;
  fs::path root;
  explicit ModelFolder(const std::string& subdir = "") : root(dir / subdir) {
    test::write_text_encoders(golden(""), "weights.safetensors", root);
  }
};

struct Case {
  std::string name, content, prompt, negative;
  int max_length = 0;
};

std::vector<Case> cases() {
  std::ifstream in(golden("cases.json"));
  const auto json = nlohmann::json::parse(in);
  std::vector<Case> out;
  for (const auto& c : json)
    out.push_back({c["name"], c["content"], c["prompt"], c["negative"], c["max_length"].get<int>()});
  return out;
}

using test::make_context;

Tensor expected(const std::string& name) { return SafetensorsFile::open(golden("expected.safetensors"))->tensor(name); }

void expect_embedding(const PromptEmbedding& actual, const std::string& prefix, double tolerance) {
  SCOPED_TRACE(prefix);
  EXPECT_EQ(actual.text_embed.dtype(), DType::F32);
  EXPECT_EQ(actual.attention_mask.dtype(), DType::U8);
  EXPECT_LE(test::relative_l2(actual.text_embed, expected(prefix + "text_embed").to(DType::F32)), tolerance);
  EXPECT_LE(test::relative_l2(actual.pooled_text_embed, expected(prefix + "pooled_text_embed").to(DType::F32)),
            tolerance);
  const Tensor mask = expected(prefix + "attention_mask");
  ASSERT_EQ(actual.attention_mask.shape(), mask.shape());
  EXPECT_EQ(actual.attention_mask.to_f32_vector(), mask.to_f32_vector());
}

TEST(TextConditioning, OfficialEmbedderFp32) {
  const ModelFolder folder;
  Context ctx = make_context(Precision::fp32);
  const TextEncoders encoders = TextEncoders::load(ctx, TextEncoderPaths::find(folder.root.string()));
  for (const Case& c : cases()) {
    const TextConditioning conditioning =
        encode_text_conditioning(ctx, encoders, c.prompt, c.negative, parse_prompt_content(c.content), c.max_length);
    // The official default keeps the padded length: L = max_length whatever the prompt's length.
    EXPECT_EQ(conditioning.prompt.text_embed.shape(), (Shape{c.max_length, 16}));
    EXPECT_EQ(conditioning.negative.pooled_text_embed.shape(), (Shape{1, 16}));
    expect_embedding(conditioning.prompt, c.name + ".", 1e-4);
    expect_embedding(conditioning.negative, c.name + ".null_", 1e-4);
  }
}

TEST(TextConditioning, Bf16CloseToFp32Reference) {
  const ModelFolder folder;
  Context ctx = make_context(Precision::bf16);
  const TextEncoders encoders = TextEncoders::load(ctx, TextEncoderPaths::find(folder.root.string()));
  const Case c = cases().front();
  const PromptEmbedding embedding =
      encode_prompt(ctx, encoders, c.prompt, parse_prompt_content(c.content), c.max_length);
  // BF16 weights and activations on random weights: a loose bound, the fp32 mode is the parity mode.
  EXPECT_LE(test::relative_l2(embedding.text_embed, expected(c.name + ".text_embed").to(DType::F32)), 3e-2);
  EXPECT_LE(test::relative_l2(embedding.pooled_text_embed, expected(c.name + ".pooled_text_embed").to(DType::F32)),
            3e-2);
}

TEST(TextConditioning, DefaultNegativePrompts) {
  EXPECT_EQ(default_negative_prompt(PromptContent::video),
            "Static, 2D cartoon, cartoon, 2d animation, paintings, images, worst quality, low quality, ugly, "
            "deformed, walking backwards");
  EXPECT_EQ(default_negative_prompt(PromptContent::image2video), default_negative_prompt(PromptContent::video));
  EXPECT_EQ(default_negative_prompt(PromptContent::image), "");
}

TEST(TextConditioning, EmptyPromptAndMissingEncodersAreRefused) {
  const ModelFolder folder("weights");
  Context ctx = make_context(Precision::fp32);
  // The official download layout puts the encoders under weights/.
  const TextEncoderPaths paths = TextEncoderPaths::find(folder.dir.string());
  EXPECT_EQ(fs::path(paths.qwen_dir), folder.root / "text_encoder");
  const TextEncoders encoders = TextEncoders::load(ctx, paths);
  try {
    encode_text_conditioning(ctx, encoders, "", "", PromptContent::video);
    FAIL() << "an empty prompt was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("prompt is empty"), std::string::npos) << e.what();
  }
  fs::remove_all(folder.root / "text_encoder");
  try {
    TextEncoderPaths::find(folder.dir.string());
    FAIL() << "a folder without text_encoder/ was accepted";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("text_encoder/config.json"), std::string::npos) << message;
    EXPECT_NE(message.find("weights/text_encoder/config.json"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

struct CliRun {
  test::TempDir temp{"encode_text_cli"};
  fs::path dir = temp.path;
  int run(const std::string& arguments) const { return test::run_k5(arguments + " -q -t 2", dir); }
  std::string stderr_text() const { return test::read_text(dir / "stderr"); }
};

std::string quoted(const std::string& text) { return test::shell_quoted(text); }

TEST(EncodeTextCli, WritesTheForwardSampleInputs) {
  const ModelFolder folder;
  const CliRun cli;
  const std::string out = (cli.dir / "out.safetensors").string();
  // The video and image cases use their content's default negative prompt, so --negative is left out.
  for (const Case& c : cases()) {
    if (c.name != "video" && c.name != "image") continue;
    SCOPED_TRACE(c.name);
    ASSERT_EQ(c.negative, default_negative_prompt(parse_prompt_content(c.content)));
    ASSERT_EQ(cli.run("encode-text --model-dir " + folder.root.string() + " --prompt " + quoted(c.prompt) +
                      " --content " + c.content + " -o " + out + " --precision fp32"),
              0)
        << cli.stderr_text();
    const auto file = SafetensorsFile::open(out);
    PromptEmbedding prompt{file->tensor("text_embed"), file->tensor("pooled_text_embed"),
                           file->tensor("attention_mask")};
    PromptEmbedding negative{file->tensor("null_text_embed"), file->tensor("null_pooled_text_embed"),
                             file->tensor("null_attention_mask")};
    expect_embedding(prompt, c.name + ".", 1e-4);
    expect_embedding(negative, c.name + ".null_", 1e-4);
  }
}

TEST(EncodeTextCli, BadInputGivesOneLineAndNoFile) {
  const ModelFolder folder;
  const CliRun cli;
  const std::string out = (cli.dir / "out.safetensors").string();
  EXPECT_NE(cli.run("encode-text --model-dir " + folder.root.string() + " --prompt '' -o " + out), 0);
  EXPECT_NE(cli.stderr_text().find("prompt is empty"), std::string::npos) << cli.stderr_text();
  EXPECT_FALSE(fs::exists(out));
  EXPECT_NE(cli.run("encode-text --model-dir " + cli.dir.string() + " --prompt cat -o " + out), 0);
  const std::string message = cli.stderr_text();
  EXPECT_NE(message.find("text_encoder/config.json"), std::string::npos) << message;
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 1) << message;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_NE(cli.run("encode-text --model-dir " + folder.root.string() + " --prompt cat --content image_edit -o " + out),
            0);
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace k5
