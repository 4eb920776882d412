// The text encoders on the GPU (QwenTextModel, ClipTextModel and TextEncoders loaded with Device::CUDA) through
// the CPU tests' own checks (the *_checks.h beside them: the same goldens, the CPU tests' tolerances): the
// Qwen2.5-VL language model (tests/golden/text_encoders: right and left padding, both config layouts, bf16),
// generation (tests/golden/qwen_generate: greedy, the 7B's sampling config, repetition penalty, eos,
// torch.multinomial sampling token for token, the KV cache against the uncached forward, M-RoPE with spliced
// embeddings, tied embeddings), CLIP (both EOS rules, bf16), the pipeline's text conditioning
// (tests/golden/encode_text) and prompt expansion (tests/golden/pipeline; the vision tower stays on the CPU), and
// the CLI's --device cuda.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gpu_test_util.h"
#include "io/image_file.h"
#include "io/safetensors.h"
#include "models/clip/clip_text_checks.h"
#include "models/qwen25vl/qwen_generate_checks.h"
#include "models/qwen25vl/qwen_text_checks.h"
#include "models/qwen25vl/vision_model.h"
#include "pipelines/prompt_expansion.h"
#include "pipelines/text_conditioning_checks.h"
#include "support/context.h"

namespace k5::test {
namespace {

namespace fs = std::filesystem;

std::string pipeline_golden(const std::string& name) { return source_path("tests/golden/pipeline/" + name); }

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// ---- Qwen2.5-VL language model ----

class CudaQwenText : public GpuTest {
 protected:
  // Relative L2 error of the GPU hidden states of `io` against its golden; in fp32 they also agree with the CPU
  // model's.
  double error(Precision precision, std::optional<QwenWeights> weights, const std::string& config,
               const std::string& io = "qwen_tiny_io.safetensors") {
    Context context = make_context(precision, Device::CUDA);
    const QwenTextModel model = load_tiny_qwen(context, config, weights, Device::CUDA);
    EXPECT_EQ(model.device(), Device::CUDA);
    if (precision == Precision::fp32) {
      const TokenInputs inputs = read_token_inputs(qwen_text_golden(io));
      const QwenTextModel cpu_model = load_tiny_qwen(ctx, config, weights);
      EXPECT_LE(relative_l2(model.forward(context, inputs.input_ids, inputs.attention_mask),
                            cpu_model.forward(ctx, inputs.input_ids, inputs.attention_mask)),
                1e-5);
    }
    return qwen_hidden_error(context, model, io);
  }
};

TEST_F(CudaQwenText, MatchesTransformersFp32) {
  EXPECT_LE(error(Precision::fp32, std::nullopt, "qwen_tiny_config.json"), 1e-4);
  EXPECT_LE(error(Precision::fp32, std::nullopt, "qwen_tiny_config_released.json"), 1e-4);
  EXPECT_LE(error(Precision::fp32, QwenWeights::f32, "qwen_tiny_config.json"), 1e-4);
}

TEST_F(CudaQwenText, MatchesTransformersLeftPaddedFp32) {
  // Fully masked (left-padded) query rows too: the flash kernel must give them transformers' values.
  EXPECT_LE(error(Precision::fp32, std::nullopt, "qwen_tiny_config.json", "qwen_tiny_left_io.safetensors"), 1e-4);
}

TEST_F(CudaQwenText, MatchesTransformersBf16) {
  EXPECT_LE(error(Precision::bf16, std::nullopt, "qwen_tiny_config.json"), 3e-2);
  EXPECT_LE(error(Precision::bf16, QwenWeights::bf16, "qwen_tiny_config.json"), 3e-2);
}

TEST_F(CudaQwenText, Int8WeightsStayClose) {
  // The CPU test's bounds (QwenTextModel.Int8WeightsStayClose); in fp32 the GPU also equals the CPU int8 model.
  EXPECT_LE(error(Precision::fp32, QwenWeights::int8, "qwen_tiny_config.json"), 3e-2);
  EXPECT_LE(error(Precision::bf16, QwenWeights::int8, "qwen_tiny_config.json"), 4e-2);
}

TEST_F(CudaQwenText, BadInputsAreStillRefused) {
  check_qwen_rejects_bad_inputs(ctx, load_tiny_qwen(ctx, "qwen_tiny_config.json", std::nullopt, Device::CUDA));
}

// ---- generation ----

class CudaQwenGenerate : public GpuTest {
 protected:
  // Made after the fixture's device check (a CUDA context needs a device).
  void SetUp() override {
    GpuTest::SetUp();
    if (!IsSkipped()) gpu_.emplace(context_options(Precision::fp32, Device::CUDA));
  }
  std::optional<Context> gpu_;

  QwenTextModel load_model(Context& context, QwenWeights weights = QwenWeights::f32) {
    return load_generate_model(context, Device::CUDA, weights);
  }
};

TEST_F(CudaQwenGenerate, GreedyMatchesTransformers) { check_greedy_generation(*gpu_, load_model(*gpu_)); }

TEST_F(CudaQwenGenerate, QwenGenerationConfigMatchesTransformers) {
  check_qwen_generation_config(*gpu_, load_model(*gpu_));
}

TEST_F(CudaQwenGenerate, RepetitionPenaltyAndEosMatchTransformers) {
  check_repetition_penalty_and_eos(*gpu_, load_model(*gpu_));
}

TEST_F(CudaQwenGenerate, SamplingMatchesTransformersTokenForToken) {
  check_sampling_token_for_token(*gpu_, load_model(*gpu_));
}

TEST_F(CudaQwenGenerate, KvCachedDecodingEqualsUncachedForward) {
  Context& gpu = *gpu_;
  const QwenTextModel model = load_model(gpu);
  check_kv_cached_decoding(gpu, model);

  // Embeddings already on the GPU are taken as they are; a cache made by a CPU model is refused.
  const std::vector<int32_t> many = long_generate_ids();
  QwenKvCache device_input;
  const Tensor from_device =
      model.forward_cached(gpu, model.embed(many).to_device(Device::CUDA), text_positions(0, 150), device_input);
  EXPECT_LE(relative_l2(from_device, model.forward(gpu, many)), 1e-6);
  const QwenTextModel cpu_model = load_generate_model(ctx, Device::CPU);
  QwenKvCache host_cache;
  cpu_model.forward_cached(ctx, model.embed({1, 2}), text_positions(0, 2), host_cache);
  EXPECT_THROW(model.forward_cached(gpu, model.embed({3}), text_positions(2, 1), host_cache), Error);
}

TEST_F(CudaQwenGenerate, MropePositionsAndEmbeddingsMatchTransformers) {
  check_mrope_generation(*gpu_, load_model(*gpu_));
}

TEST_F(CudaQwenGenerate, TiedEmbeddingsServeAsLmHead) {
  Context& gpu = *gpu_;
  const TempDir dir("cuda_qwen_tied");
  const std::string path = (dir.path / "tied.safetensors").string();
  save_weights_without_lm_head(path);
  const QwenTextConfig config = QwenTextConfig::from_json_file(generate_golden("config.json"));
  const QwenTextModel model =
      QwenTextModel::load(gpu, Checkpoint::open(path), config, QwenWeights::f32, true, Device::CUDA);
  check_tied_lm_head(gpu, model, 1e-5);
  // The table the host lookup reads is still intact after its pages were uploaded as lm_head.
  const QwenTextModel cpu_model = QwenTextModel::load(ctx, generate_golden("weights.safetensors"),
                                                      generate_golden("config.json"), QwenWeights::f32);
  EXPECT_EQ(model.embed({1, 5, 9}).to_f32_vector(), cpu_model.embed({1, 5, 9}).to_f32_vector());
}

TEST_F(CudaQwenGenerate, Bf16AndInt8FollowFp32) {
  for (const QwenWeights weights : {QwenWeights::bf16, QwenWeights::int8}) {
    SCOPED_TRACE(int(weights));
    Context context = make_context(Precision::bf16, Device::CUDA);
    check_reduced_precision_follows_fp32(context, load_model(context, weights));
  }
}

// ---- CLIP ----

class CudaClipText : public GpuTest {
 protected:
  void check(Precision precision, const std::string& variant, double tolerance) {
    Context context = make_context(precision, Device::CUDA);
    const ClipTextModel model = load_tiny_clip(context, variant, Device::CUDA);
    EXPECT_EQ(model.device(), Device::CUDA);
    check_clip_matches_transformers(context, model, variant, tolerance);
    check_clip_pooler_ignores_padding_mask(context, model, variant, tolerance);
  }
};

TEST_F(CudaClipText, MatchesTransformersFp32LegacyEos) { check(Precision::fp32, "clip_tiny", 1e-4); }
TEST_F(CudaClipText, MatchesTransformersFp32EosTokenId) { check(Precision::fp32, "clip_tiny_eos", 1e-4); }
TEST_F(CudaClipText, MatchesTransformersBf16) { check(Precision::bf16, "clip_tiny", 3e-2); }

TEST_F(CudaClipText, BadInputsAreStillRefused) {
  check_clip_rejects_bad_inputs(ctx, load_tiny_clip(ctx, "clip_tiny", Device::CUDA));
}

// ---- the pipeline's text conditioning and prompt expansion ----

class CudaTextConditioning : public GpuTest {};

TEST_F(CudaTextConditioning, OfficialEmbedderFp32AndBf16) {
  const EncodeTextFolder folder;
  Context gpu = make_context(Precision::fp32, Device::CUDA);
  const TextEncoders encoders = TextEncoders::load(gpu, folder.paths(), std::nullopt, false, false, Device::CUDA);
  EXPECT_EQ(encoders.qwen.device(), Device::CUDA);
  EXPECT_EQ(encoders.clip.device(), Device::CUDA);
  check_official_embedder(gpu, encoders, 1e-4);
  Context bf16 = make_context(Precision::bf16, Device::CUDA);
  check_bf16_embedding(bf16, TextEncoders::load(bf16, folder.paths(), std::nullopt, false, false, Device::CUDA), 3e-2);
}

// The tiny pipeline model's text encoders (with the vision tower, the generation config and lm_head).
struct PipelineEncoders {
  TempDir dir{"cuda_pipeline_encoders"};
  PipelineEncoders() { write_text_encoders(pipeline_golden(""), "text_encoders.safetensors", dir.path); }
  TextEncoderPaths paths() const { return TextEncoderPaths::find(dir.path.string()); }
};

TEST_F(CudaTextConditioning, ImageEditPromptWithTheVisionTowerOnTheCpu) {
  // image_edit: the source image's features (vision tower, CPU) are spliced into the prompt's embeddings and
  // the language model runs them through forward_cached on the GPU; the same on the CPU is the reference.
  const PipelineEncoders folder;
  const Image image = read_image(pipeline_golden("i2i.png"));
  Context gpu = make_context(Precision::fp32, Device::CUDA);
  const TextEncoders on_gpu = TextEncoders::load(gpu, folder.paths(), std::nullopt, true, false, Device::CUDA);
  const TextEncoders on_cpu = TextEncoders::load(ctx, folder.paths(), std::nullopt, true, false);
  const std::string prompt = "Make the hat of the cat bright red.";
  const PromptEmbedding expected = encode_prompt(ctx, on_cpu, prompt, PromptContent::image_edit, 0, &image);
  const PromptEmbedding actual = encode_prompt(gpu, on_gpu, prompt, PromptContent::image_edit, 0, &image);
  EXPECT_EQ(actual.text_embed.device(), Device::CPU);
  EXPECT_LE(relative_l2(actual.text_embed, expected.text_embed), 1e-5);
  EXPECT_LE(relative_l2(actual.pooled_text_embed, expected.pooled_text_embed), 1e-5);
  EXPECT_EQ(actual.attention_mask.to_f32_vector(), expected.attention_mask.to_f32_vector());
}

TEST_F(CudaTextConditioning, PromptExpansionMatchesTheOfficialPipeline) {
  // The golden expansions of tests/golden/pipeline (256 tokens each with the 7B's sampling config, top_k 1).
  const PipelineEncoders folder;
  Context gpu = make_context(Precision::fp32, Device::CUDA);
  const TextEncoders encoders = TextEncoders::load(gpu, folder.paths(), std::nullopt, true, true, Device::CUDA);
  const GenerationConfig config = expansion_generation_config(folder.paths());
  for (const auto& c : read_json(pipeline_golden("cases.json"))) {
    if (!c.contains("expanded")) continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    const std::string name = c["name"];
    const ExpansionMode mode = parse_expansion_mode(name.substr(0, 3));
    std::optional<Image> image;
    if (c.contains("image")) image = read_image(pipeline_golden(c["image"]));
    EXPECT_EQ(expand_prompt(gpu, encoders, config, mode, c["prompt"].get<std::string>(), image ? &*image : nullptr,
                            RngDevice::cpu, c["seed"].get<uint64_t>()),
              c["expanded"].get<std::string>());
  }
}

// ---- Qwen2.5-VL vision tower ----

// The tiny golden tower (tools/golden/qwen_vision.py: windows and full attention, three images) on the GPU against
// transformers, with the CPU test's bounds (fp32 1e-4, bf16 3e-2).
TEST_F(GpuTest, QwenVisionTowerOnTheGpuMatchesTransformers) {
  const auto golden = [](const std::string& name) { return source_path("tests/golden/qwen_vision/" + name); };
  const auto expected = SafetensorsFile::open(golden("expected.safetensors"));
  const Tensor grid_values = expected->tensor("image_grid_thw").contiguous();
  std::vector<QwenGridTHW> grids;
  for (int64_t i = 0; i + 2 < grid_values.numel(); i += 3) {
    const int64_t* g = grid_values.data<int64_t>() + i;
    grids.push_back({g[0], g[1], g[2]});
  }
  for (const Precision precision : {Precision::fp32, Precision::bf16}) {
    Context context({.threads = 2, .precision = precision, .log_level = LogLevel::quiet});
    const QwenVisionModel model = QwenVisionModel::load(context, golden("weights.safetensors"), golden("config.json"),
                                                        std::nullopt, Device::CUDA);
    EXPECT_EQ(model.device(), Device::CUDA);
    const Tensor embeds = model.forward(context, expected->tensor("pixel_values"), grids);
    EXPECT_EQ(embeds.device(), Device::CPU);
    EXPECT_LE(relative_l2(embeds, expected->tensor("image_embeds")), precision == Precision::fp32 ? 1e-4 : 3e-2)
        << precision_name(precision);
  }
}

// ---- CLI: --device cuda ----

// Needs the k5 binary (K5_BINARY, else the build's): skipped where only the test program was sent.
class CudaTextEncoderCli : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    const char* configured = std::getenv("K5_BINARY");
    if (!IsSkipped() && !fs::exists(configured ? configured : K5_BINARY)) GTEST_SKIP() << "no k5 binary here";
  }
  K5Cli cli{"cuda_text_cli", "-q -t 2 --device cuda"};
};

TEST_F(CudaTextEncoderCli, ForwardQwenAndClip) {
  check_forward_qwen_cli(cli);
  const std::string int8 = cli.path("int8.safetensors");  // int8 weights stay int8 on the GPU
  EXPECT_EQ(cli.run(forward_qwen_arguments(qwen_text_golden("qwen_tiny_io.safetensors"), int8) + " --weights-int8"), 0)
      << cli.err();
  EXPECT_TRUE(fs::exists(int8));
  check_forward_clip_cli(cli);
}

TEST_F(CudaTextEncoderCli, EncodeTextAndExpandPrompt) {
  const EncodeTextFolder model;
  check_encode_text_cli(cli, model.root.string());

  const PipelineEncoders folder;
  for (const auto& c : read_json(pipeline_golden("cases.json"))) {
    if (c["name"] != "t2v_expand") continue;
    ASSERT_EQ(
        cli.run("expand-prompt --precision fp32 --model-dir " + folder.dir.path.string() + " --mode t2v --rng cpu " +
                shell_quoted(c["prompt"].get<std::string>()) + " >" + cli.path("expanded.txt")),
        0)
        << cli.err();
    EXPECT_EQ(read_text(cli.path("expanded.txt")), c["expanded"].get<std::string>() + "\n");
  }
}

}  // namespace
}  // namespace k5::test
