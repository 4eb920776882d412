// Qwen2.5-VL language model (text path) against transformers goldens (tools/golden/text_encoders.py):
// tiny random config, 2 layers, GQA 4/2 heads, right-padded attention mask.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "models/qwen25vl/qwen_text_checks.h"
#include "support/context.h"
#include "support/model_folder.h"

namespace k5 {
namespace {

std::string golden(const std::string& name) { return test::qwen_text_golden(name); }

using test::make_context;

double run_relative_l2(Precision precision, std::optional<QwenWeights> weights, const std::string& config,
                       const std::string& io = "qwen_tiny_io.safetensors") {
  Context ctx = make_context(precision);
  return test::qwen_hidden_error(ctx, test::load_tiny_qwen(ctx, config, weights), io);
}

TEST(QwenTextModel, ConfigTransformers5AndReleasedLayoutsAgree) {
  const QwenTextConfig a = QwenTextConfig::from_json_file(golden("qwen_tiny_config.json"));
  const QwenTextConfig b = QwenTextConfig::from_json_file(golden("qwen_tiny_config_released.json"));
  for (const QwenTextConfig& c : {a, b}) {
    EXPECT_EQ(c.hidden_size, 64);
    EXPECT_EQ(c.num_hidden_layers, 2);
    EXPECT_EQ(c.num_attention_heads, 4);
    EXPECT_EQ(c.num_key_value_heads, 2);
    EXPECT_EQ(c.head_dim, 16);
    EXPECT_EQ(c.vocab_size, 1000);
    EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
    EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
    EXPECT_EQ(c.mrope_section, std::vector<int64_t>({2, 3, 3}));
  }
}

TEST(QwenTextModel, MatchesTransformersFp32) {
  // Every position, padded rows included (transformers computes them too).
  EXPECT_LE(run_relative_l2(Precision::fp32, std::nullopt, "qwen_tiny_config.json"), 1e-4);
  EXPECT_LE(run_relative_l2(Precision::fp32, std::nullopt, "qwen_tiny_config_released.json"), 1e-4);
}

TEST(QwenTextModel, MatchesTransformersLeftPaddedFp32) {
  // Positions stay arange(L) whatever the mask; fully masked (left-padded) query rows match too.
  EXPECT_LE(run_relative_l2(Precision::fp32, std::nullopt, "qwen_tiny_config.json", "qwen_tiny_left_io.safetensors"),
            1e-4);
}

TEST(QwenTextModel, MatchesTransformersBf16) {
  EXPECT_LE(run_relative_l2(Precision::bf16, std::nullopt, "qwen_tiny_config.json"), 3e-2);
}

TEST(QwenTextModel, Int8WeightsStayClose) {
  const double error = run_relative_l2(Precision::fp32, QwenWeights::int8, "qwen_tiny_config.json");
  std::printf("qwen tiny int8 relative L2 vs transformers fp32: %.3g\n", error);
  EXPECT_LE(error, 3e-2);
  const double error_bf16 = run_relative_l2(Precision::bf16, QwenWeights::int8, "qwen_tiny_config.json");
  std::printf("qwen tiny int8 (bf16 activations) relative L2 vs transformers fp32: %.3g\n", error_bf16);
  EXPECT_LE(error_bf16, 4e-2);
}

TEST(QwenTextModel, LoadsTransformers5KeyLayout) {
  // transformers 5 saves the language model under model.language_model.*; the loader takes both.
  const test::TempDir dir("qwen_v5_keys");
  const std::string path = (dir.path / "weights.safetensors").string();
  test::save_renamed_copy(golden("qwen_tiny.safetensors"), path, [](const std::string& name) {
    return name.rfind("model.", 0) == 0 ? "model.language_model." + name.substr(6) : std::string();
  });
  Context ctx = make_context(Precision::fp32);
  EXPECT_LE(test::qwen_hidden_error(ctx, QwenTextModel::load(ctx, path, golden("qwen_tiny_config.json"))), 1e-4);
}

TEST(QwenTextModel, LoadsShardedCheckpoint) {
  // Released 7B checkpoints are sharded: model-0000N-of-0000M.safetensors + model.safetensors.index.json.
  const Checkpoint whole = Checkpoint::open(golden("qwen_tiny.safetensors"));
  const test::TempDir dir("qwen_sharded");
  const std::filesystem::path& folder = dir.path;
  std::vector<std::pair<std::string, Tensor>> shards[2];
  nlohmann::json index;
  size_t i = 0;
  for (const std::string& name : whole.names()) {
    const size_t shard = i++ % 2;
    shards[shard].emplace_back(name, whole.tensor(name));
    index["weight_map"][name] = "model-0000" + std::to_string(shard + 1) + "-of-00002.safetensors";
  }
  for (size_t shard = 0; shard < 2; ++shard)
    save_safetensors((folder / ("model-0000" + std::to_string(shard + 1) + "-of-00002.safetensors")).string(),
                     shards[shard]);
  std::ofstream((folder / "model.safetensors.index.json").string()) << index.dump();
  std::filesystem::copy_file(golden("qwen_tiny_config_released.json"), folder / "config.json");
  Context ctx = make_context(Precision::fp32);
  const QwenTextModel model = QwenTextModel::load(ctx, folder.string());  // config.json found beside
  EXPECT_LE(test::qwen_hidden_error(ctx, model), 1e-4);
}

TEST(QwenTextModel, RejectsBadInputs) {
  Context ctx = make_context(Precision::fp32);
  const QwenTextModel model = test::load_tiny_qwen(ctx);
  test::check_qwen_rejects_bad_inputs(ctx, model);
  // A config that does not match the weights names the tensor.
  QwenTextConfig wrong = model.config();
  wrong.intermediate_size = 96;
  try {
    QwenTextModel::load(ctx, Checkpoint::open(golden("qwen_tiny.safetensors")), wrong, QwenWeights::f32);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mlp.gate_proj.weight"), std::string::npos) << e.what();
  }
  // CLIP weights are no Qwen checkpoint.
  EXPECT_THROW(QwenTextModel::load(ctx, golden("clip_tiny.safetensors"), golden("qwen_tiny_config.json")), Error);
}

// ---- CLI ----

TEST(QwenTextModel, CliMatchesGolden) {
  const test::K5Cli cli("qwen_cli");
  test::check_forward_qwen_cli(cli);
}

TEST(QwenTextModel, CliErrorsWriteNothing) {
  const test::K5Cli cli("qwen_cli_bad");
  const std::string out = cli.path("out.safetensors");
  // Inputs without input_ids (the weights file).
  EXPECT_NE(cli.run(test::forward_qwen_arguments(golden("qwen_tiny.safetensors"), out)), 0);
  EXPECT_NE(cli.run("forward qwen --model-dir /nonexistent/model --config " + golden("qwen_tiny_config.json") +
                    " --inputs " + golden("qwen_tiny_io.safetensors") + " --output " + out),
            0);
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace k5
