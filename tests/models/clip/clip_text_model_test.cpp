// CLIP text model against transformers goldens (tools/golden/text_encoders.py): tiny random config,
// 77 tokens padded like CLIPTokenizer(padding="max_length"), both EOS pooling rules.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "models/clip/clip_text_checks.h"
#include "support/context.h"
#include "support/model_folder.h"

namespace k5 {
namespace {

std::string golden(const std::string& name) { return test::clip_text_golden(name); }

using test::make_context;

void check(Precision precision, const std::string& variant, double tolerance) {
  Context ctx = make_context(precision);
  test::check_clip_matches_transformers(ctx, test::load_tiny_clip(ctx, variant), variant, tolerance);
}

TEST(ClipTextModel, MatchesTransformersFp32LegacyEos) { check(Precision::fp32, "clip_tiny", 1e-4); }
TEST(ClipTextModel, MatchesTransformersFp32EosTokenId) { check(Precision::fp32, "clip_tiny_eos", 1e-4); }
TEST(ClipTextModel, MatchesTransformersBf16) { check(Precision::bf16, "clip_tiny", 3e-2); }

TEST(ClipTextModel, PoolerIgnoresPaddingMask) {
  Context ctx = make_context(Precision::fp32);
  test::check_clip_pooler_ignores_padding_mask(ctx, test::load_tiny_clip(ctx), "clip_tiny", 1e-4);
}

TEST(ClipTextModel, LoadsKeysWithoutPrefix) {
  const test::TempDir dir("clip_noprefix");
  const std::string path = (dir.path / "weights.safetensors").string();
  test::save_renamed_copy(golden("clip_tiny.safetensors"), path,
                          [](const std::string& name) { return name.substr(11); });
  Context ctx = make_context(Precision::fp32);
  test::check_clip_matches_transformers(ctx, ClipTextModel::load(ctx, path, golden("clip_tiny_config.json")),
                                        "clip_tiny", 1e-4);
}

TEST(ClipTextModel, ReadsTextConfigOfAFullClipConfig) {
  // openai/clip-vit-large-patch14 ships a CLIPConfig: the text tower's fields sit under text_config, and
  // absent fields take transformers' CLIPTextConfig defaults.
  const test::TempDir dir("clip_full_config");
  const auto path = dir.path / "config.json";
  std::ofstream(path.string()) << R"({"model_type": "clip", "projection_dim": 768,
    "text_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "eos_token_id": 2},
    "vision_config": {"hidden_size": 1024}})";
  const ClipTextConfig c = ClipTextConfig::from_json_file(path.string());
  EXPECT_EQ(c.hidden_size, 768);
  EXPECT_EQ(c.intermediate_size, 3072);
  EXPECT_EQ(c.num_attention_heads, 12);
  EXPECT_EQ(c.num_hidden_layers, 12);
  EXPECT_EQ(c.max_position_embeddings, 77);
  EXPECT_EQ(c.vocab_size, 49408);
  EXPECT_EQ(c.hidden_act, "quick_gelu");
  EXPECT_EQ(c.eos_token_id, 2);
}

TEST(ClipTextModel, RejectsBadInputs) {
  Context ctx = make_context(Precision::fp32);
  test::check_clip_rejects_bad_inputs(ctx, test::load_tiny_clip(ctx));
  EXPECT_THROW(ClipTextModel::load(ctx, golden("qwen_tiny.safetensors"), golden("clip_tiny_config.json")), Error);
}

TEST(ClipTextModel, CliMatchesGoldenAndRejectsBadInput) {
  const test::K5Cli cli("clip_cli");
  const std::string out = cli.path("clip.safetensors");
  EXPECT_NE(cli.run(test::forward_clip_arguments(golden("clip_tiny.safetensors"), out)), 0);
  EXPECT_FALSE(std::filesystem::exists(out));
  test::check_forward_clip_cli(cli);
}

}  // namespace
}  // namespace k5
