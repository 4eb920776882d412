// Text conditioning (src/pipelines/text_conditioning, `k5 encode-text`) against the official
// Kandinsky5TextEmbedder.encode run on tiny random Qwen2.5-VL / CLIP models with the real tokenizers
// (tools/golden/encode_text.py). The golden keeps only the embedding rows the cases use; the test rebuilds
// the official model-folder layout (text_encoder/, text_encoder2/) in a temporary folder from them.
#include "pipelines/text_conditioning.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "pipelines/text_conditioning_checks.h"
#include "support/context.h"
#include "support/model_folder.h"

namespace k5 {
namespace {

namespace fs = std::filesystem;

using test::make_context;

TEST(TextConditioning, OfficialEmbedderFp32) {
  const test::EncodeTextFolder folder;
  Context ctx = make_context(Precision::fp32);
  test::check_official_embedder(ctx, TextEncoders::load(ctx, folder.paths()), 1e-4);
}

TEST(TextConditioning, Bf16CloseToFp32Reference) {
  const test::EncodeTextFolder folder;
  Context ctx = make_context(Precision::bf16);
  test::check_bf16_embedding(ctx, TextEncoders::load(ctx, folder.paths()), 3e-2);
}

TEST(TextConditioning, DefaultNegativePrompts) {
  EXPECT_EQ(default_negative_prompt(PromptContent::video),
            "Static, 2D cartoon, cartoon, 2d animation, paintings, images, worst quality, low quality, ugly, "
            "deformed, walking backwards");
  EXPECT_EQ(default_negative_prompt(PromptContent::image2video), default_negative_prompt(PromptContent::video));
  EXPECT_EQ(default_negative_prompt(PromptContent::image), "");
}

TEST(TextConditioning, EmptyPromptAndMissingEncodersAreRefused) {
  const test::EncodeTextFolder folder("weights");
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

TEST(EncodeTextCli, WritesTheForwardSampleInputs) {
  const test::EncodeTextFolder folder;
  const test::K5Cli cli("encode_text_cli");
  test::check_encode_text_cli(cli, folder.root.string());
}

TEST(EncodeTextCli, BadInputGivesOneLineAndNoFile) {
  const test::EncodeTextFolder folder;
  const test::K5Cli cli("encode_text_cli");
  const std::string out = cli.path("out.safetensors");
  EXPECT_NE(cli.run("encode-text --model-dir " + folder.root.string() + " --prompt '' -o " + out), 0);
  EXPECT_NE(cli.err().find("prompt is empty"), std::string::npos) << cli.err();
  EXPECT_FALSE(fs::exists(out));
  EXPECT_NE(cli.run("encode-text --model-dir " + cli.dir.path.string() + " --prompt cat -o " + out), 0);
  const std::string message = cli.err();
  EXPECT_NE(message.find("text_encoder/config.json"), std::string::npos) << message;
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 1) << message;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_NE(cli.run("encode-text --model-dir " + folder.root.string() + " --prompt cat --content image_edit -o " + out),
            0);
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace k5
