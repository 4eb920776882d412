// Qwen2.5-VL vision side against transformers (tools/golden/qwen_vision.py): the image processor
// (Qwen2VLImageProcessor, bit-exact pixel values), the vision tower (tiny random config, 4 blocks, window and
// full attention), and the prompt expansion and M-RoPE positions of get_rope_index.
#include "models/qwen25vl/vision_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/qwen25vl/image_processor.h"
#include "support/compare.h"
#include "support/context.h"
#include "support/model_folder.h"

namespace k5 {
namespace {

std::string golden(const std::string& name) { return test::source_path("tests/golden/qwen_vision/" + name); }

Tensor expected(const std::string& name) { return SafetensorsFile::open(golden("expected.safetensors"))->tensor(name); }

std::vector<int64_t> int64s(const Tensor& tensor) {
  const int64_t* data = tensor.contiguous().data<int64_t>();
  return std::vector<int64_t>(data, data + tensor.numel());
}

std::vector<int32_t> int32s(const Tensor& tensor) {
  std::vector<int32_t> out;
  for (int64_t value : int64s(tensor)) out.push_back(int32_t(value));
  return out;
}

std::vector<QwenGridTHW> expected_grids() {
  const std::vector<int64_t> values = int64s(expected("image_grid_thw"));
  std::vector<QwenGridTHW> grids;
  for (size_t i = 0; i + 2 < values.size(); i += 3) grids.push_back({values[i], values[i + 1], values[i + 2]});
  return grids;
}

std::vector<Image> golden_images() {
  return {read_image(golden("image0.png")), read_image(golden("image1.png")), read_image(golden("image2.png"))};
}

// Runs `body`, expecting a k5::Error whose one-line message contains `part`.
template <typename Body>
void expect_error(Body body, const std::string& part) {
  try {
    body();
    ADD_FAILURE() << "no error; expected one containing '" << part << "'";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find(part), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(QwenVisionProcessor, SmartResizeMatchesTransformers) {
  // Values from transformers' smart_resize (downscale to max_pixels, keep, upscale to min_pixels).
  auto check = [](int64_t h, int64_t w, int64_t min_pixels, int64_t max_pixels, int64_t eh, int64_t ew) {
    const QwenImageSize size = qwen_smart_resize(h, w, 28, min_pixels, max_pixels);
    EXPECT_EQ(size.height, eh) << h << "x" << w;
    EXPECT_EQ(size.width, ew) << h << "x" << w;
  };
  check(61, 97, 3136, 11760, 56, 84);
  check(150, 200, 3136, 11760, 84, 112);
  check(20, 30, 3136, 11760, 56, 84);
  check(1, 1, 3136, 12845056, 56, 56);
  check(1024, 1024, 3136, 12845056, 1036, 1036);  // round(36.57) = 37 blocks
  check(512, 1000, 3136, 12845056, 504, 1008);
  check(4000, 3000, 3136, 1003520, 1148, 840);
  check(42, 42, 3136, 12845056, 56, 56);  // round(1.5) = 2 (half to even)
  check(70, 70, 3136, 12845056, 56, 56);  // round(2.5) = 2 (half to even)
}

TEST(QwenVisionProcessor, ReadsConfigWithTransformersDefaults) {
  const QwenImageProcessorConfig c = QwenImageProcessorConfig::from_json_file(golden(""));
  EXPECT_EQ(c.min_pixels, 3136);
  EXPECT_EQ(c.max_pixels, 28 * 28 * 15);
  EXPECT_EQ(c.factor(), 28);
  test::TempDir dir("qwen_vision_config");
  std::ofstream(dir.path / "preprocessor_config.json") << R"({"size": {"shortest_edge": 100, "longest_edge": 5000}})";
  const QwenImageProcessorConfig d = QwenImageProcessorConfig::from_json_file(dir.path.string());
  EXPECT_EQ(d.min_pixels, 100);
  EXPECT_EQ(d.max_pixels, 5000);
  EXPECT_DOUBLE_EQ(d.image_std[2], 0.27577711);
  std::ofstream(dir.path / "preprocessor_config.json") << R"({})";
  EXPECT_EQ(QwenImageProcessorConfig::from_json_file(dir.path.string()).max_pixels, 28 * 28 * 1280);
  std::ofstream(dir.path / "preprocessor_config.json") << R"({"resample": 2})";
  expect_error([&] { QwenImageProcessorConfig::from_json_file(dir.path.string()); }, "resample 2");
  std::ofstream(dir.path / "preprocessor_config.json") << R"({"image_mean": [0.5, 0.5]})";
  expect_error([&] { QwenImageProcessorConfig::from_json_file(dir.path.string()); }, "image_mean");
}

TEST(QwenVisionProcessor, PixelValuesBitExact) {
  const QwenImageProcessorConfig config = QwenImageProcessorConfig::from_json_file(golden("preprocessor_config.json"));
  const QwenPixelInputs inputs = preprocess_qwen_images(config, golden_images());
  EXPECT_EQ(inputs.image_grid_thw, expected_grids());
  const Tensor reference = expected("pixel_values");
  ASSERT_EQ(inputs.pixel_values.shape(), reference.shape());
  const std::vector<float> actual = inputs.pixel_values.to_f32_vector(), wanted = reference.to_f32_vector();
  size_t differing = 0;
  for (size_t i = 0; i < actual.size(); ++i) differing += actual[i] != wanted[i];
  EXPECT_EQ(differing, 0u) << "of " << actual.size();
}

TEST(QwenVisionProcessor, RefusesDegenerateImages) {
  const QwenImageProcessorConfig config;
  expect_error([&] { preprocess_qwen_images(config, {Image(300, 1)}); }, "aspect ratio");
  expect_error([&] { preprocess_qwen_images(config, {Image()}); }, "empty");
  expect_error([&] { preprocess_qwen_images(config, {}); }, "no images");
}

TEST(QwenVisionModel, WindowsSplitAsTransformers) {
  // 3x4 merge units, windows of 2x2 units: window_index and cu_window_seqlens of transformers.
  const QwenVisionWindows w = qwen_vision_windows({1, 6, 8}, 2, 56, 14);
  EXPECT_EQ(w.unit_order, std::vector<int64_t>({0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(w.window_starts, std::vector<int64_t>({0, 16, 32, 40, 48}));
  const QwenVisionWindows whole = qwen_vision_windows({1, 4, 4}, 2, 56, 14);
  EXPECT_EQ(whole.window_starts, std::vector<int64_t>({0, 16}));
}

double run_relative_l2(Precision precision, const std::string& checkpoint) {
  Context ctx = test::make_context(precision);
  const QwenVisionModel model = QwenVisionModel::load(ctx, checkpoint, golden("config.json"));
  const Tensor embeds = model.forward(ctx, expected("pixel_values"), expected_grids());
  return test::relative_l2(embeds, expected("image_embeds"));
}

TEST(QwenVisionModel, MatchesTransformersFp32) {
  const double error = run_relative_l2(Precision::fp32, golden("weights.safetensors"));
  std::printf("qwen vision fp32 relative L2: %.3g\n", error);
  EXPECT_LE(error, 1e-4);
}

TEST(QwenVisionModel, MatchesTransformersBf16) {
  const double error = run_relative_l2(Precision::bf16, golden("weights.safetensors"));
  std::printf("qwen vision bf16 relative L2: %.3g\n", error);
  EXPECT_LE(error, 3e-2);
}

TEST(QwenVisionModel, ImagesToEmbeddingsEndToEnd) {
  Context ctx = test::make_context(Precision::fp32);
  const QwenPixelInputs inputs = preprocess_qwen_images(
      QwenImageProcessorConfig::from_json_file(golden("preprocessor_config.json")), golden_images());
  const QwenVisionModel model = QwenVisionModel::load(ctx, golden("weights.safetensors"));
  EXPECT_LE(test::relative_l2(model.forward(ctx, inputs.pixel_values, inputs.image_grid_thw), expected("image_embeds")),
            1e-4);
}

// The golden's tensors re-saved under other names (transformers 4.x layout) or with one left out.
void write_checkpoint(const std::filesystem::path& path, const std::string& new_prefix, const std::string& drop) {
  const auto file = SafetensorsFile::open(golden("weights.safetensors"));
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const TensorInfo& info : file->tensors()) {
    if (info.name == drop) continue;
    tensors.emplace_back(new_prefix + info.name.substr(std::string("model.visual.").size()), file->tensor(info.name));
  }
  save_safetensors(path.string(), tensors);
}

TEST(QwenVisionModel, ReadsTransformers4Keys) {
  test::TempDir dir("qwen_vision_keys");
  write_checkpoint(dir.path / "model.safetensors", "visual.", "");
  EXPECT_LE(run_relative_l2(Precision::fp32, (dir.path / "model.safetensors").string()), 1e-4);
}

TEST(QwenVisionModel, BadInputsAreOneLineErrors) {
  Context ctx = test::make_context(Precision::fp32);
  test::TempDir dir("qwen_vision_bad");
  write_checkpoint(dir.path / "missing.safetensors", "model.visual.", "model.visual.blocks.2.mlp.up_proj.bias");
  expect_error([&] { QwenVisionModel::load(ctx, (dir.path / "missing.safetensors").string(), golden("config.json")); },
               "missing tensor 'model.visual.blocks.2.mlp.up_proj.bias'");

  nlohmann::json config = nlohmann::json::parse(std::ifstream(golden("config.json")));
  config["vision_config"]["hidden_size"] = 48;  // the checkpoint has 32
  std::ofstream(dir.path / "wrong.json") << config.dump();
  expect_error([&] { QwenVisionModel::load(ctx, golden("weights.safetensors"), (dir.path / "wrong.json").string()); },
               "patch_embed.proj.weight' has shape");
  config["vision_config"]["num_heads"] = 5;
  std::ofstream(dir.path / "heads.json") << config.dump();
  expect_error([&] { QwenVisionConfig::from_json_file((dir.path / "heads.json").string()); }, "num_heads 5");
  config.erase("vision_config");
  std::ofstream(dir.path / "text.json") << config.dump();
  expect_error([&] { QwenVisionConfig::from_json_file((dir.path / "text.json").string()); }, "vision_config");

  const QwenVisionModel model = QwenVisionModel::load(ctx, golden("weights.safetensors"));
  const Tensor pixels = expected("pixel_values");
  expect_error([&] { model.forward(ctx, pixels, {{1, 4, 6}}); }, "hold 24 patches, pixel_values 96");
  expect_error([&] { model.forward(ctx, pixels.slice(1, 0, 100).contiguous(), expected_grids()); }, "expected F32");
  expect_error([&] { model.forward(ctx, pixels.slice(0, 0, 15), {{1, 3, 5}}); }, "multiple of merge size");
}

TEST(QwenVisionPrompt, ExpandsImagePadsAndMatchesGetRopeIndex) {
  const QwenImageTokens tokens = QwenImageTokens::from_json_file(golden("config.json"));
  EXPECT_EQ(tokens.image_pad, 151655);
  EXPECT_EQ(tokens.vision_start, 151652);
  const std::vector<QwenGridTHW> grid{expected_grids()[1]};  // the prompt holds image1
  const std::vector<int32_t> ids = expand_image_pads(int32s(expected("input_ids_text")), tokens.image_pad, grid, 2);
  EXPECT_EQ(ids, int32s(expected("input_ids")));
  EXPECT_EQ(qwen_mrope_positions(ids, tokens.image_pad, grid, 2), int64s(expected("position_ids")));

  expect_error([&] { expand_image_pads(int32s(expected("input_ids_text")), tokens.image_pad, {}, 2); },
               "more image tokens");
  expect_error([&] { qwen_mrope_positions(ids, tokens.image_pad, {{1, 4, 6}}, 2); }, "has 12 tokens");
}

}  // namespace
}  // namespace k5
