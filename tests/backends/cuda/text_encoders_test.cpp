// The text encoders on the GPU (QwenTextModel, ClipTextModel and TextEncoders loaded with Device::CUDA)
// against the goldens the CPU tests use, within the CPU tests' tolerances: the Qwen2.5-VL language model
// (tests/golden/text_encoders: right and left padding, both config layouts, bf16), generation
// (tests/golden/qwen_generate: greedy, the 7B's sampling config, repetition penalty, eos, torch.multinomial
// sampling token for token, the KV cache against the uncached forward, M-RoPE with spliced embeddings, tied
// embeddings), CLIP (both EOS rules, bf16), the pipeline's text conditioning (tests/golden/encode_text) and
// prompt expansion (tests/golden/pipeline; the vision tower stays on the CPU), and the CLI's --device cuda.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "gpu_test_util.h"
#include "io/image_file.h"
#include "io/safetensors.h"
#include "models/clip/clip_text_model.h"
#include "models/qwen25vl/qwen_generate.h"
#include "models/qwen25vl/qwen_text_model.h"
#include "models/qwen25vl/token_inputs.h"
#include "ops/linear.h"
#include "pipelines/prompt_expansion.h"
#include "pipelines/text_conditioning.h"
#include "pipelines/torch_random.h"
#include "support/model_folder.h"

namespace k5::test {
namespace {

namespace fs = std::filesystem;

std::string text_golden(const std::string& name) { return source_path("tests/golden/text_encoders/" + name); }
std::string generate_golden(const std::string& name) { return source_path("tests/golden/qwen_generate/" + name); }
std::string encode_golden(const std::string& name) { return source_path("tests/golden/encode_text/" + name); }
std::string pipeline_golden(const std::string& name) { return source_path("tests/golden/pipeline/" + name); }

Context context_for(Precision precision) {
  return Context({.threads = 2, .device = Device::CUDA, .precision = precision, .log_level = LogLevel::quiet});
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// ---- Qwen2.5-VL language model ----

class CudaQwenText : public GpuTest {
 protected:
  // Relative L2 error of the GPU hidden states of `io` against its golden; also checks they come back to the
  // host and agree with the CPU model's.
  double error(Precision precision, std::optional<QwenWeights> weights, const std::string& config,
               const std::string& io = "qwen_tiny_io.safetensors") {
    Context context = context_for(precision);
    const TokenInputs inputs = read_token_inputs(text_golden(io));
    const Tensor expected = SafetensorsFile::open(text_golden(io))->tensor("hidden_states");
    const QwenTextModel model = QwenTextModel::load(context, text_golden("qwen_tiny.safetensors"), text_golden(config),
                                                    weights, false, Device::CUDA);
    EXPECT_EQ(model.device(), Device::CUDA);
    const Tensor hidden = model.forward(context, inputs.input_ids, inputs.attention_mask);
    EXPECT_EQ(hidden.device(), Device::CPU);
    EXPECT_EQ(hidden.shape(), Shape({expected.size(1), expected.size(2)}));
    if (precision == Precision::fp32) {
      const QwenTextModel cpu_model =
          QwenTextModel::load(ctx, text_golden("qwen_tiny.safetensors"), text_golden(config), weights);
      EXPECT_LE(relative_l2(hidden, cpu_model.forward(ctx, inputs.input_ids, inputs.attention_mask)), 1e-5);
    }
    return relative_l2(hidden.unsqueeze(0), expected);
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

TEST_F(CudaQwenText, Int8WeightsAreRefusedWithOneLine) {
  try {
    QwenTextModel::load(ctx, text_golden("qwen_tiny.safetensors"), text_golden("qwen_tiny_config.json"),
                        QwenWeights::int8, false, Device::CUDA);
    FAIL() << "int8 weights were accepted on the GPU";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("CPU only"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST_F(CudaQwenText, BadInputsAreStillRefused) {
  const QwenTextModel model =
      QwenTextModel::load(ctx, text_golden("qwen_tiny.safetensors"), text_golden("qwen_tiny_config.json"), std::nullopt,
                          false, Device::CUDA);
  EXPECT_THROW(model.forward(ctx, {1, 2, 1000}), Error);
  EXPECT_THROW(model.forward(ctx, {1, 2, 3}, {1, 1}), Error);
  EXPECT_THROW(model.forward(ctx, {}), Error);
}

// ---- generation ----

const nlohmann::json& cases() {
  static const nlohmann::json json = read_json(generate_golden("cases.json"));
  return json;
}

const nlohmann::json& generate_case(const std::string& name) {
  for (const auto& entry : cases()["generate"])
    if (entry["name"] == name) return entry;
  throw std::runtime_error("no generate case " + name);
}

std::vector<int32_t> ids_of(const nlohmann::json& json) { return json.get<std::vector<int32_t>>(); }

Tensor expected(const std::string& name) {
  return SafetensorsFile::open(generate_golden("expected.safetensors"))->tensor(name);
}

std::vector<float> row(const Tensor& tensor, int64_t index) { return tensor.select(0, index).to_f32_vector(); }

GenerationConfig greedy() {
  GenerationConfig config;
  config.eos_token_ids = {517};  // outside the vocabulary: never produced
  return config;
}

class CudaQwenGenerate : public GpuTest {
 protected:
  // Made after the fixture's device check (a CUDA context needs a device).
  void SetUp() override {
    GpuTest::SetUp();
    if (!IsSkipped())
      gpu_.emplace(ContextOptions{
          .threads = 2, .device = Device::CUDA, .precision = Precision::fp32, .log_level = LogLevel::quiet});
  }
  std::optional<Context> gpu_;

  QwenTextModel load_model(Context& context, QwenWeights weights = QwenWeights::f32) {
    return QwenTextModel::load(context, generate_golden("weights.safetensors"), generate_golden("config.json"), weights,
                               true, Device::CUDA);
  }

  std::vector<int32_t> sample(const QwenTextModel& model, const GenerationConfig& config, uint64_t seed = 42) {
    TorchMultinomial multinomial(RngDevice::cpu, seed);
    return generate(*gpu_, model, ids_of(cases()["prompt"]), config, 24,
                    [&](std::span<const float> probs) { return multinomial.sample(probs); });
  }
};

TEST_F(CudaQwenGenerate, GreedyMatchesTransformers) {
  Context& gpu = *gpu_;
  const QwenTextModel model = load_model(gpu);
  const std::vector<int32_t> prompt = ids_of(cases()["prompt"]);
  const std::vector<int32_t> tokens = ids_of(generate_case("greedy")["tokens"]);
  EXPECT_EQ(generate(gpu, model, prompt, greedy(), 24), tokens);

  // Each step's raw logits, teacher-forced on the golden tokens through the device KV cache.
  const Tensor logits = expected("greedy.logits");
  QwenKvCache cache;
  Tensor hidden = model.forward_cached(gpu, model.embed(prompt), text_positions(0, int64_t(prompt.size())), cache);
  EXPECT_EQ(hidden.device(), Device::CPU);
  ASSERT_FALSE(cache.keys.empty());
  EXPECT_EQ(cache.keys[0].device(), Device::CUDA);
  EXPECT_EQ(cache.values.back().device(), Device::CUDA);
  for (int64_t step = 0; step < int64_t(tokens.size()); ++step) {
    const Tensor actual = model.logits(gpu, hidden.slice(0, hidden.size(0) - 1, hidden.size(0)));
    EXPECT_EQ(actual.device(), Device::CPU);
    EXPECT_LE(relative_l2(actual.to_f32_vector(), row(logits, step)), 1e-4) << "step " << step;
    hidden = model.forward_cached(gpu, model.embed({tokens[size_t(step)]}),
                                  text_positions(int64_t(prompt.size()) + step, 1), cache);
  }
  EXPECT_EQ(cache.length, int64_t(prompt.size() + tokens.size()));
}

TEST_F(CudaQwenGenerate, QwenGenerationConfigMatchesTransformers) {
  Context& gpu = *gpu_;
  const GenerationConfig config = GenerationConfig::from_json_file(generate_golden("generation_config.json"));
  const QwenTextModel model = load_model(gpu);
  const std::vector<int32_t> tokens = ids_of(generate_case("qwen_config")["tokens"]);
  EXPECT_EQ(sample(model, config), tokens);
  EXPECT_EQ(sample(model, config, 12345), tokens);
}

TEST_F(CudaQwenGenerate, RepetitionPenaltyAndEosMatchTransformers) {
  Context& gpu = *gpu_;
  const QwenTextModel model = load_model(gpu);
  const std::vector<int32_t> prompt = ids_of(cases()["prompt"]);
  GenerationConfig penalty = greedy();
  penalty.repetition_penalty = 1.3;
  EXPECT_EQ(generate(gpu, model, prompt, penalty, 24), ids_of(generate_case("penalty")["tokens"]));
  const auto& eos_case = generate_case("eos");
  GenerationConfig eos = greedy();
  eos.eos_token_ids = ids_of(eos_case["config"]["eos_token_id"]);
  EXPECT_EQ(generate(gpu, model, prompt, eos, 24), ids_of(eos_case["tokens"]));
}

TEST_F(CudaQwenGenerate, SamplingMatchesTransformersTokenForToken) {
  Context& gpu = *gpu_;
  const QwenTextModel model = load_model(gpu);
  for (const std::string name : {"sample", "sample_filtered"}) {
    const auto& c = generate_case(name);
    GenerationConfig config = greedy();
    config.do_sample = true;
    config.temperature = c["config"]["temperature"];
    config.top_k = c["config"]["top_k"];
    config.top_p = c["config"]["top_p"];
    config.repetition_penalty = c["config"].value("repetition_penalty", 1.0);
    const std::vector<int32_t> tokens = ids_of(c["tokens"]);
    EXPECT_EQ(sample(model, config), tokens) << name;
    EXPECT_NE(sample(model, config, 7), tokens) << name;
  }
}

TEST_F(CudaQwenGenerate, KvCachedDecodingEqualsUncachedForward) {
  Context& gpu = *gpu_;
  const QwenTextModel model = load_model(gpu);
  std::vector<int32_t> ids = ids_of(cases()["prompt"]);
  for (const int32_t t : ids_of(generate_case("greedy")["tokens"])) ids.push_back(t);
  const int64_t L = int64_t(ids.size());
  const Tensor uncached = model.forward(gpu, ids);

  QwenKvCache cache;
  std::vector<float> cached;
  int64_t done = 0;
  for (const int64_t chunk : {int64_t(7), int64_t(1), int64_t(1), int64_t(13)}) {
    const std::vector<int32_t> piece(ids.begin() + done, ids.begin() + done + chunk);
    const auto v = model.forward_cached(gpu, model.embed(piece), text_positions(done, chunk), cache).to_f32_vector();
    cached.insert(cached.end(), v.begin(), v.end());
    done += chunk;
  }
  for (; done < L; ++done) {
    const auto v =
        model.forward_cached(gpu, model.embed({ids[size_t(done)]}), text_positions(done, 1), cache).to_f32_vector();
    cached.insert(cached.end(), v.begin(), v.end());
  }
  EXPECT_EQ(cache.length, L);
  EXPECT_LE(relative_l2(cached, uncached.to_f32_vector()), 1e-5);

  // Growth past the first capacity (64 rows) keeps the cached rows (device-to-device copies).
  QwenKvCache long_cache;
  std::vector<int32_t> many;
  for (int i = 0; i < 150; ++i) many.push_back(ids[size_t(i) % ids.size()]);
  const Tensor whole = model.forward(gpu, many);
  Tensor last;
  for (int64_t i = 0; i < 150; i += 10) {
    const std::vector<int32_t> piece(many.begin() + i, many.begin() + i + 10);
    last = model.forward_cached(gpu, model.embed(piece), text_positions(i, 10), long_cache);
  }
  EXPECT_GE(long_cache.keys[0].size(0), 150);
  EXPECT_LE(relative_l2(last.to_f32_vector(), whole.slice(0, 140, 150).to_f32_vector()), 1e-5);

  // Embeddings already on the GPU are taken as they are; a cache made by a CPU model is refused.
  QwenKvCache device_input;
  const Tensor from_device =
      model.forward_cached(gpu, model.embed(many).to_device(Device::CUDA), text_positions(0, 150), device_input);
  EXPECT_LE(relative_l2(from_device, whole), 1e-6);
  const QwenTextModel cpu_model = QwenTextModel::load(ctx, generate_golden("weights.safetensors"),
                                                      generate_golden("config.json"), QwenWeights::f32, true);
  QwenKvCache host_cache;
  cpu_model.forward_cached(ctx, model.embed({1, 2}), text_positions(0, 2), host_cache);
  EXPECT_THROW(model.forward_cached(gpu, model.embed({3}), text_positions(2, 1), host_cache), Error);
}

TEST_F(CudaQwenGenerate, MropePositionsAndEmbeddingsMatchTransformers) {
  Context& gpu = *gpu_;
  const QwenTextModel model = load_model(gpu);
  const auto& c = cases()["mrope"];
  const std::vector<int32_t> text_a = ids_of(c["text_a"]), text_b = ids_of(c["text_b"]);
  const Tensor image = expected("mrope.image_embeds");
  const int64_t D = model.config().hidden_size, a = int64_t(text_a.size()), n = image.size(0);
  Tensor embeds = Tensor::empty(DType::F32, {a + n + int64_t(text_b.size()), D});
  embeds.slice(0, 0, a).copy_from(model.embed(text_a));
  embeds.slice(0, a, a + n).copy_from(image);
  embeds.slice(0, a + n, embeds.size(0)).copy_from(model.embed(text_b));
  std::vector<int64_t> positions;
  for (const auto& r : c["positions"])
    for (const auto& v : r) positions.push_back(v.get<int64_t>());
  const int64_t L = embeds.size(0);
  const Tensor golden_logits = expected("mrope.logits");

  QwenKvCache whole;
  EXPECT_LE(relative_l2(model.logits(gpu, model.forward_cached(gpu, embeds, positions, whole)), golden_logits), 1e-4);

  // Pieces that split the image span.
  QwenKvCache cache;
  for (const auto& [begin, end] : {std::pair<int64_t, int64_t>{0, 6}, {6, 7}, {7, 12}, {12, 16}}) {
    std::vector<int64_t> piece;
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t i = begin; i < end; ++i) piece.push_back(positions[size_t(r * L + i)]);
    const Tensor h = model.forward_cached(gpu, embeds.slice(0, begin, end), piece, cache);
    EXPECT_LE(relative_l2(model.logits(gpu, h), golden_logits.slice(0, begin, end).contiguous()), 1e-4) << begin;
  }

  GenerationPrompt prompt;
  prompt.input_ids = text_a;
  prompt.input_ids.insert(prompt.input_ids.end(), 6, 0);
  prompt.input_ids.insert(prompt.input_ids.end(), text_b.begin(), text_b.end());
  prompt.input_embeds = embeds;
  prompt.position_ids = positions;
  const std::vector<int32_t> tokens = ids_of(c["tokens"]);
  EXPECT_EQ(generate(gpu, model, prompt, greedy(), 24), tokens);

  const Tensor step_logits = expected("mrope.step_logits");
  QwenKvCache steps;
  Tensor hidden = model.forward_cached(gpu, embeds, positions, steps);
  const int64_t next = *std::max_element(positions.begin(), positions.end()) + 1;
  for (int64_t step = 0; step < int64_t(tokens.size()); ++step) {
    const Tensor logits = model.logits(gpu, hidden.slice(0, hidden.size(0) - 1, hidden.size(0)));
    EXPECT_LE(relative_l2(logits.to_f32_vector(), row(step_logits, step)), 1e-4) << "step " << step;
    hidden = model.forward_cached(gpu, model.embed({tokens[size_t(step)]}), text_positions(next + step, 1), steps);
  }
}

TEST_F(CudaQwenGenerate, TiedEmbeddingsServeAsLmHead) {
  Context& gpu = *gpu_;
  const Checkpoint full = Checkpoint::open(generate_golden("weights.safetensors"));
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& name : full.names())
    if (name != "lm_head.weight") tensors.emplace_back(name, full.tensor(name));
  const TempDir dir("cuda_qwen_tied");
  const std::string path = (dir.path / "tied.safetensors").string();
  save_safetensors(path, tensors);
  const QwenTextConfig config = QwenTextConfig::from_json_file(generate_golden("config.json"));
  const QwenTextModel model =
      QwenTextModel::load(gpu, Checkpoint::open(path), config, QwenWeights::f32, true, Device::CUDA);
  const Tensor hidden = model.forward(gpu, ids_of(cases()["prompt"]));
  const Tensor expected_logits = ops::linear(ctx, hidden, full.tensor("model.language_model.embed_tokens.weight"));
  EXPECT_LE(relative_l2(model.logits(gpu, hidden), expected_logits), 1e-5);
  // The table the host lookup reads is still intact after its pages were uploaded as lm_head.
  const QwenTextModel cpu_model = QwenTextModel::load(ctx, generate_golden("weights.safetensors"),
                                                      generate_golden("config.json"), QwenWeights::f32);
  EXPECT_EQ(model.embed({1, 5, 9}).to_f32_vector(), cpu_model.embed({1, 5, 9}).to_f32_vector());
}

TEST_F(CudaQwenGenerate, Bf16FollowsFp32) {
  Context context = context_for(Precision::bf16);
  const QwenTextModel model = load_model(context, QwenWeights::bf16);
  const std::vector<int32_t> tokens = ids_of(generate_case("greedy")["tokens"]);
  EXPECT_EQ(generate(context, model, ids_of(cases()["prompt"]), greedy(), 3),
            std::vector<int32_t>(tokens.begin(), tokens.begin() + 3));
}

// ---- CLIP ----

class CudaClipText : public GpuTest {
 protected:
  void check(Precision precision, const std::string& variant, double tolerance) {
    Context context = context_for(precision);
    const TokenInputs inputs = read_token_inputs(text_golden(variant + "_io.safetensors"));
    const auto io = SafetensorsFile::open(text_golden(variant + "_io.safetensors"));
    const ClipTextModel model = ClipTextModel::load(context, text_golden("clip_tiny.safetensors"),
                                                    text_golden(variant + "_config.json"), Device::CUDA);
    EXPECT_EQ(model.device(), Device::CUDA);
    const ClipTextOutput out = model.forward(context, inputs.input_ids, inputs.attention_mask);
    EXPECT_EQ(out.last_hidden_state.device(), Device::CPU);
    EXPECT_EQ(out.pooler_output.device(), Device::CPU);
    EXPECT_LE(relative_l2(out.last_hidden_state.unsqueeze(0), io->tensor("last_hidden_state")), tolerance);
    EXPECT_LE(relative_l2(out.pooler_output.unsqueeze(0), io->tensor("pooler_output")), tolerance);
    // Without the mask the pooled state is the same (causal attention never reaches the padding).
    EXPECT_LE(
        relative_l2(model.forward(context, inputs.input_ids).pooler_output.unsqueeze(0), io->tensor("pooler_output")),
        tolerance);
  }
};

TEST_F(CudaClipText, MatchesTransformersFp32LegacyEos) { check(Precision::fp32, "clip_tiny", 1e-4); }
TEST_F(CudaClipText, MatchesTransformersFp32EosTokenId) { check(Precision::fp32, "clip_tiny_eos", 1e-4); }
TEST_F(CudaClipText, MatchesTransformersBf16) { check(Precision::bf16, "clip_tiny", 3e-2); }

TEST_F(CudaClipText, BadInputsAreStillRefused) {
  const ClipTextModel model = ClipTextModel::load(ctx, text_golden("clip_tiny.safetensors"),
                                                  text_golden("clip_tiny_config.json"), Device::CUDA);
  EXPECT_THROW(model.forward(ctx, std::vector<int32_t>(78, 1)), Error);
  EXPECT_THROW(model.forward(ctx, {1, 5000}), Error);
  EXPECT_THROW(model.forward(ctx, {1, 2}, {1}), Error);
}

// ---- the pipeline's text conditioning and prompt expansion ----

class CudaTextConditioning : public GpuTest {};

void expect_embedding(const PromptEmbedding& actual, const std::string& prefix, double tolerance) {
  SCOPED_TRACE(prefix);
  const auto golden = SafetensorsFile::open(encode_golden("expected.safetensors"));
  EXPECT_EQ(actual.text_embed.device(), Device::CPU);
  EXPECT_EQ(actual.pooled_text_embed.device(), Device::CPU);
  EXPECT_LE(relative_l2(actual.text_embed, golden->tensor(prefix + "text_embed").to(DType::F32)), tolerance);
  EXPECT_LE(relative_l2(actual.pooled_text_embed, golden->tensor(prefix + "pooled_text_embed").to(DType::F32)),
            tolerance);
  EXPECT_EQ(actual.attention_mask.to_f32_vector(), golden->tensor(prefix + "attention_mask").to_f32_vector());
}

TEST_F(CudaTextConditioning, OfficialEmbedderFp32AndBf16) {
  const TempDir dir("cuda_encode_text");
  write_text_encoders(encode_golden(""), "weights.safetensors", dir.path);
  const TextEncoderPaths paths = TextEncoderPaths::find(dir.path.string());
  Context gpu = context_for(Precision::fp32);
  const TextEncoders encoders = TextEncoders::load(gpu, paths, std::nullopt, false, false, Device::CUDA);
  EXPECT_EQ(encoders.qwen.device(), Device::CUDA);
  EXPECT_EQ(encoders.clip.device(), Device::CUDA);
  const nlohmann::json cases = read_json(encode_golden("cases.json"));
  for (const auto& c : cases) {
    const TextConditioning conditioning =
        encode_text_conditioning(gpu, encoders, c["prompt"].get<std::string>(), c["negative"].get<std::string>(),
                                 parse_prompt_content(c["content"].get<std::string>()), c["max_length"].get<int>());
    expect_embedding(conditioning.prompt, c["name"].get<std::string>() + ".", 1e-4);
    expect_embedding(conditioning.negative, c["name"].get<std::string>() + ".null_", 1e-4);
  }
  Context bf16 = context_for(Precision::bf16);
  const TextEncoders bf16_encoders = TextEncoders::load(bf16, paths, std::nullopt, false, false, Device::CUDA);
  const auto& c = cases.front();
  const PromptEmbedding embedding =
      encode_prompt(bf16, bf16_encoders, c["prompt"].get<std::string>(),
                    parse_prompt_content(c["content"].get<std::string>()), c["max_length"].get<int>());
  const auto golden = SafetensorsFile::open(encode_golden("expected.safetensors"));
  const std::string name = c["name"];
  EXPECT_LE(relative_l2(embedding.text_embed, golden->tensor(name + ".text_embed").to(DType::F32)), 3e-2);
  EXPECT_LE(relative_l2(embedding.pooled_text_embed, golden->tensor(name + ".pooled_text_embed").to(DType::F32)), 3e-2);
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
  Context gpu = context_for(Precision::fp32);
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
  Context gpu = context_for(Precision::fp32);
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

// ---- CLI: --device cuda ----

// Needs the k5 binary (K5_BINARY, else the build's): skipped where only the test program was sent.
class CudaTextEncoderCli : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    const char* configured = std::getenv("K5_BINARY");
    if (!IsSkipped() && !fs::exists(configured ? configured : K5_BINARY)) GTEST_SKIP() << "no k5 binary here";
  }
  TempDir dir{"cuda_text_cli"};
  int run(const std::string& arguments) { return run_k5(arguments + " -q -t 2 --device cuda", dir.path); }
  std::string err() const { return read_text(dir.path / "stderr"); }
  std::string path(const std::string& name) const { return (dir.path / name).string(); }
};

TEST_F(CudaTextEncoderCli, ForwardQwenAndClip) {
  ASSERT_EQ(run("forward qwen --model-dir " + text_golden("qwen_tiny.safetensors") + " --config " +
                text_golden("qwen_tiny_config.json") + " --inputs " + text_golden("qwen_tiny_io.safetensors") +
                " --output " + path("qwen.safetensors") + " --precision fp32"),
            0)
      << err();
  EXPECT_LE(relative_l2(SafetensorsFile::open(path("qwen.safetensors"))->tensor("hidden_states"),
                        SafetensorsFile::open(text_golden("qwen_tiny_io.safetensors"))->tensor("hidden_states")),
            1e-4);
  EXPECT_NE(run("forward qwen --model-dir " + text_golden("qwen_tiny.safetensors") + " --config " +
                text_golden("qwen_tiny_config.json") + " --inputs " + text_golden("qwen_tiny_io.safetensors") +
                " --output " + path("int8.safetensors") + " --weights-int8"),
            0);
  const std::string message = err();
  EXPECT_NE(message.find("CPU only"), std::string::npos) << message;
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 1) << message;
  EXPECT_FALSE(fs::exists(path("int8.safetensors")));

  ASSERT_EQ(run("forward clip --model-dir " + text_golden("clip_tiny.safetensors") + " --config " +
                text_golden("clip_tiny_config.json") + " --inputs " + text_golden("clip_tiny_io.safetensors") +
                " --output " + path("clip.safetensors") + " --precision fp32"),
            0)
      << err();
  const auto io = SafetensorsFile::open(text_golden("clip_tiny_io.safetensors"));
  const auto result = SafetensorsFile::open(path("clip.safetensors"));
  EXPECT_LE(relative_l2(result->tensor("pooler_output"), io->tensor("pooler_output")), 1e-4);
  EXPECT_LE(relative_l2(result->tensor("last_hidden_state"), io->tensor("last_hidden_state")), 1e-4);
}

TEST_F(CudaTextEncoderCli, EncodeTextAndExpandPrompt) {
  const TempDir model("cuda_text_cli_model");
  write_text_encoders(encode_golden(""), "weights.safetensors", model.path);
  for (const auto& c : read_json(encode_golden("cases.json"))) {
    const std::string name = c["name"];
    if (name != "video" && name != "image") continue;
    SCOPED_TRACE(name);
    ASSERT_EQ(run("encode-text --model-dir " + model.path.string() + " --prompt " +
                  shell_quoted(c["prompt"].get<std::string>()) + " --content " + c["content"].get<std::string>() +
                  " -o " + path("encoded.safetensors") + " --precision fp32"),
              0)
        << err();
    const auto file = SafetensorsFile::open(path("encoded.safetensors"));
    expect_embedding({file->tensor("text_embed"), file->tensor("pooled_text_embed"), file->tensor("attention_mask")},
                     name + ".", 1e-4);
    expect_embedding(
        {file->tensor("null_text_embed"), file->tensor("null_pooled_text_embed"), file->tensor("null_attention_mask")},
        name + ".null_", 1e-4);
  }

  const PipelineEncoders folder;
  for (const auto& c : read_json(pipeline_golden("cases.json"))) {
    if (c["name"] != "t2v_expand") continue;
    ASSERT_EQ(run("expand-prompt --precision fp32 --model-dir " + folder.dir.path.string() + " --mode t2v --rng cpu " +
                  shell_quoted(c["prompt"].get<std::string>()) + " >" + path("expanded.txt")),
              0)
        << err();
    EXPECT_EQ(read_text(path("expanded.txt")), c["expanded"].get<std::string>() + "\n");
  }
}

}  // namespace
}  // namespace k5::test
