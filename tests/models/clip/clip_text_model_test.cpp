// CLIP text model against transformers goldens (tools/golden/text_encoders.py): tiny random config,
// 77 tokens padded like CLIPTokenizer(padding="max_length"), both EOS pooling rules.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "models/clip/clip_text_model.h"
#include "models/qwen25vl/token_inputs.h"
#include "support/compare.h"
#include "support/context.h"

namespace k5 {
namespace {

std::string golden(const std::string& name) { return test::source_path("tests/golden/text_encoders/" + name); }

using test::make_context;

void check(Precision precision, const std::string& variant, double tolerance) {
  Context ctx = make_context(precision);
  const TokenInputs inputs = read_token_inputs(golden(variant + "_io.safetensors"));
  const auto io = SafetensorsFile::open(golden(variant + "_io.safetensors"));
  const ClipTextModel model =
      ClipTextModel::load(ctx, golden("clip_tiny.safetensors"), golden(variant + "_config.json"));
  const ClipTextOutput out = model.forward(ctx, inputs.input_ids, inputs.attention_mask);
  EXPECT_LE(test::relative_l2(out.last_hidden_state.unsqueeze(0), io->tensor("last_hidden_state")), tolerance);
  EXPECT_LE(test::relative_l2(out.pooler_output.unsqueeze(0), io->tensor("pooler_output")), tolerance);
}

TEST(ClipTextModel, MatchesTransformersFp32LegacyEos) { check(Precision::fp32, "clip_tiny", 1e-4); }
TEST(ClipTextModel, MatchesTransformersFp32EosTokenId) { check(Precision::fp32, "clip_tiny_eos", 1e-4); }
TEST(ClipTextModel, MatchesTransformersBf16) { check(Precision::bf16, "clip_tiny", 3e-2); }

TEST(ClipTextModel, PoolerIgnoresPaddingMask) {
  // Causal attention: the EOS state never sees the padded keys, so the mask-free run pools the same.
  Context ctx = make_context(Precision::fp32);
  const TokenInputs inputs = read_token_inputs(golden("clip_tiny_io.safetensors"));
  const ClipTextModel model = ClipTextModel::load(ctx, golden("clip_tiny.safetensors"), golden("clip_tiny_config.json"));
  const Tensor expected = SafetensorsFile::open(golden("clip_tiny_io.safetensors"))->tensor("pooler_output");
  EXPECT_LE(test::relative_l2(model.forward(ctx, inputs.input_ids).pooler_output.unsqueeze(0), expected), 1e-4);
}

TEST(ClipTextModel, LoadsKeysWithoutPrefix) {
  const Checkpoint released = Checkpoint::open(golden("clip_tiny.safetensors"));
  std::vector<std::pair<std::string, Tensor>> renamed;
  for (const std::string& name : released.names()) renamed.emplace_back(name.substr(11), released.tensor(name));
  const std::string path = (std::filesystem::temp_directory_path() / "k5_clip_noprefix.safetensors").string();
  save_safetensors(path, renamed);
  Context ctx = make_context(Precision::fp32);
  const TokenInputs inputs = read_token_inputs(golden("clip_tiny_io.safetensors"));
  const ClipTextModel model = ClipTextModel::load(ctx, path, golden("clip_tiny_config.json"));
  const Tensor expected = SafetensorsFile::open(golden("clip_tiny_io.safetensors"))->tensor("pooler_output");
  EXPECT_LE(test::relative_l2(model.forward(ctx, inputs.input_ids, inputs.attention_mask).pooler_output.unsqueeze(0),
                              expected),
            1e-4);
  std::filesystem::remove(path);
}

TEST(ClipTextModel, ReadsTextConfigOfAFullClipConfig) {
  // openai/clip-vit-large-patch14 ships a CLIPConfig: the text tower's fields sit under text_config, and
  // absent fields take transformers' CLIPTextConfig defaults.
  const auto path = std::filesystem::temp_directory_path() / "k5_clip_full_config.json";
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
  std::filesystem::remove(path);
}

TEST(ClipTextModel, RejectsBadInputs) {
  Context ctx = make_context(Precision::fp32);
  const ClipTextModel model = ClipTextModel::load(ctx, golden("clip_tiny.safetensors"), golden("clip_tiny_config.json"));
  EXPECT_THROW(model.forward(ctx, std::vector<int32_t>(78, 1)), Error);  // longer than max_position_embeddings
  EXPECT_THROW(model.forward(ctx, {1, 5000}), Error);                     // outside the vocabulary
  EXPECT_THROW(model.forward(ctx, {1, 2}, {1}), Error);
  EXPECT_THROW(ClipTextModel::load(ctx, golden("qwen_tiny.safetensors"), golden("clip_tiny_config.json")), Error);
}

int run_k5(const std::string& arguments) {
  const std::string command = std::string(K5_BINARY) + " " + arguments + " -q --threads 2 2>/dev/null";
  return std::system(command.c_str());
}

TEST(ClipTextModel, CliMatchesGoldenAndRejectsBadInput) {
  const auto out = std::filesystem::temp_directory_path() / "k5_clip_cli_out.safetensors";
  std::filesystem::remove(out);
  const std::string model = " --model-dir " + golden("clip_tiny.safetensors") + " --config " + golden("clip_tiny_config.json");
  EXPECT_NE(run_k5("forward clip" + model + " --inputs " + golden("clip_tiny.safetensors") + " --output " + out.string()), 0);
  EXPECT_FALSE(std::filesystem::exists(out));
  ASSERT_EQ(run_k5("forward clip" + model + " --inputs " + golden("clip_tiny_io.safetensors") + " --output " +
                   out.string() + " --precision fp32"),
            0);
  const auto io = SafetensorsFile::open(golden("clip_tiny_io.safetensors"));
  const auto result = SafetensorsFile::open(out.string());
  EXPECT_LE(test::relative_l2(result->tensor("pooler_output"), io->tensor("pooler_output")), 1e-4);
  EXPECT_LE(test::relative_l2(result->tensor("last_hidden_state"), io->tensor("last_hidden_state")), 1e-4);
  std::filesystem::remove(out);
}

}  // namespace
}  // namespace k5
