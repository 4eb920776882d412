// JsonFields (Hugging Face config.json access) and the official Kandinsky YAML configs.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/io_test_util.h"
#include "io/json_fields.h"
#include "io/kandinsky_config.h"
#include "support/compare.h"

namespace k5 {
namespace {

using test::ScratchDir;
using test::write_text;

template <typename Call>
std::string error_of(Call call) {
  try {
    call();
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(JsonFields, TypedAccess) {
  const nlohmann::json config = nlohmann::json::parse(R"({
    "hidden_size": 3584, "rms_norm_eps": 1e-6, "tie": false, "model_type": "qwen2_5_vl",
    "sizes": [1, 2, 3], "ratios": [0.5, 1], "names": ["a", "b"], "nothing": null,
    "vision_config": {"depth": 32, "inner": {"k": "v"}}})");
  const JsonFields fields(config, "dir/config.json");
  EXPECT_EQ(fields.integer("hidden_size"), 3584);
  EXPECT_DOUBLE_EQ(fields.number("rms_norm_eps"), 1e-6);
  EXPECT_DOUBLE_EQ(fields.number("hidden_size"), 3584.0);  // integers are numbers
  EXPECT_FALSE(fields.boolean("tie"));
  EXPECT_EQ(fields.string("model_type"), "qwen2_5_vl");
  EXPECT_EQ(fields.integers("sizes"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(fields.numbers("ratios"), (std::vector<double>{0.5, 1.0}));
  EXPECT_EQ(fields.strings("names"), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(fields.has("tie"));
  EXPECT_FALSE(fields.has("nothing"));
  EXPECT_FALSE(fields.has("absent"));
  EXPECT_EQ(fields.integer("absent", 7), 7);
  EXPECT_EQ(fields.integer("nothing", 8), 8);
  EXPECT_EQ(fields.string("absent", "x"), "x");
  EXPECT_TRUE(fields.boolean("absent", true));
  EXPECT_DOUBLE_EQ(fields.number("absent", 2.5), 2.5);
  const JsonFields vision = fields.object("vision_config");
  EXPECT_EQ(vision.integer("depth"), 32);
  EXPECT_EQ(vision.source(), "dir/config.json: vision_config");
  EXPECT_EQ(vision.object("inner").source(), "dir/config.json: vision_config.inner");
}

TEST(JsonFields, ErrorsNameFileKeyAndType) {
  const nlohmann::json config = nlohmann::json::parse(
      R"({"hidden_size": "big", "eps": 0.5, "flag": 1, "sizes": [1, "x"], "vision_config": 3, "nothing": null})");
  const JsonFields fields(config, "dir/config.json");
  EXPECT_EQ(error_of([&] { fields.integer("hidden_size"); }),
            "dir/config.json: key 'hidden_size' must be an integer, found string \"big\"");
  EXPECT_EQ(error_of([&] { fields.integer("missing"); }), "dir/config.json: missing key 'missing'");
  EXPECT_EQ(error_of([&] { fields.integer("nothing"); }), "dir/config.json: missing key 'nothing'");
  EXPECT_NE(error_of([&] { fields.integer("eps"); }).find("'eps' must be an integer"), std::string::npos);
  EXPECT_NE(error_of([&] { fields.integer("eps", 3); }).find("'eps' must be an integer"), std::string::npos);
  EXPECT_NE(error_of([&] { fields.boolean("flag"); }).find("'flag' must be a boolean"), std::string::npos);
  EXPECT_NE(error_of([&] { fields.integers("sizes"); }).find("'sizes' must be an array of integers"), std::string::npos);
  EXPECT_NE(error_of([&] { fields.strings("eps"); }).find("'eps' must be an array of strings"), std::string::npos);
  EXPECT_NE(error_of([&] { fields.object("vision_config"); }).find("'vision_config' must be an object"),
            std::string::npos);
  EXPECT_NE(error_of([&] { fields.string("eps", ""); }).find("must be a string"), std::string::npos);
  const nlohmann::json array = nlohmann::json::array();
  EXPECT_NE(error_of([&] { JsonFields(array, "a.json").integer("x"); }).find("a.json: expected a JSON object"),
            std::string::npos);
}

TEST(JsonFields, ReadJsonFile) {
  ScratchDir dir;
  write_text(dir.file("config.json"), R"({"a": 1})");
  EXPECT_EQ(read_json_file(dir.file("config.json"))["a"], 1);
  write_text(dir.file("broken.json"), R"({"a": )");
  EXPECT_NE(error_of([&] { read_json_file(dir.file("broken.json")); }).find("broken.json: not valid JSON"),
            std::string::npos);
  EXPECT_NE(error_of([&] { read_json_file(dir.file("absent.json")); }).find("absent.json: cannot open"),
            std::string::npos);
}

// ---------------------------------------------------------------------------------------------------------

std::vector<std::string> official_configs() {
  std::vector<std::string> paths;
  for (const auto& item : std::filesystem::directory_iterator(test::shared_path("k5-official/configs")))
    if (item.path().extension() == ".yaml") paths.push_back(item.path().string());
  std::sort(paths.begin(), paths.end());
  return paths;
}

TEST(KandinskyConfig, EveryOfficialConfigLoads) {
  const auto paths = official_configs();
  ASSERT_EQ(paths.size(), 17u);
  for (const auto& path : paths) {
    SCOPED_TRACE(path);
    const KandinskyConfig config = load_kandinsky_config(path);
    const std::string name = std::filesystem::path(path).filename().string();
    EXPECT_EQ(config.source, path);
    EXPECT_EQ(config.dit.in_visual_dim, 16);
    EXPECT_EQ(config.dit.patch_size, (std::array<int64_t, 3>{1, 2, 2}));
    EXPECT_EQ(config.dit.model_dim % config.dit.head_dim(), 0);
    EXPECT_EQ(config.text_embedder.qwen_emb_size, 3584);
    EXPECT_EQ(config.text_embedder.clip_max_length, 77);
    const bool lite = name.find("_lite_") != std::string::npos;
    const bool image = name.find("t2i") != std::string::npos || name.find("i2i") != std::string::npos;
    EXPECT_EQ(config.is_video(), !image);
    if (image) {
      EXPECT_EQ(config.dit.model_dim, 2560);
      EXPECT_EQ(config.dit.head_dim(), 128);
      EXPECT_FALSE(config.scheduler_scale.has_value());
    } else if (lite) {
      EXPECT_EQ(config.dit.model_dim, 1792);
      EXPECT_EQ(config.dit.num_visual_blocks, 32);
      EXPECT_EQ(config.dit.num_heads(), 28);
    } else {
      EXPECT_EQ(config.dit.model_dim, 4096);
      EXPECT_EQ(config.dit.num_text_blocks, 4);
      EXPECT_EQ(config.dit.num_visual_blocks, 60);
      EXPECT_EQ(config.dit.time_dim, 1024);
    }
    EXPECT_EQ(config.dit.input_channels(), config.dit.visual_cond || config.dit.instruct_type == "channel" ? 33 : 16);
    if (config.attention.type == "nabla") {
      EXPECT_EQ(config.attention.method, "topcdf");
    }
    // MagCache ratios come in (conditional, unconditional) pairs.
    EXPECT_EQ(config.mag_ratios.size() % 2, 0u);
  }
}

TEST(KandinskyConfig, SpecificValues) {
  const auto edit = load_kandinsky_config(test::shared_path("k5-official/configs/k5_lite_i2i_sft_hd.yaml"));
  EXPECT_EQ(edit.dit.instruct_type, "channel");
  EXPECT_EQ(edit.dit.input_channels(), 33);
  EXPECT_EQ(edit.vae.name, "flux");
  EXPECT_DOUBLE_EQ(edit.guidance_weight, 3.5);
  EXPECT_EQ(edit.text_embedder.qwen_max_length, 512);
  EXPECT_EQ(edit.dit.in_text_dim, 3584);  // absent: default

  const auto distilled = load_kandinsky_config(test::shared_path("k5-official/configs/k5_lite_t2v_10s_distil_sd.yaml"));
  EXPECT_EQ(distilled.attention.type, "nabla");
  EXPECT_DOUBLE_EQ(distilled.attention.P, 0.9);
  EXPECT_EQ(distilled.attention.wT, 11);
  EXPECT_TRUE(distilled.dit.visual_cond);
  EXPECT_EQ(distilled.num_steps, 16);
  EXPECT_EQ(distilled.scale_factor, (std::array<double, 3>{1.0, 2.0, 2.0}));
  EXPECT_EQ(distilled.scheduler_scale.value_or(0), 10.0);
  EXPECT_TRUE(distilled.mag_ratios.empty());

  const auto i2v = load_kandinsky_config(test::shared_path("k5-official/configs/k5_lite_i2v_5s_sft_sd.yaml"));
  EXPECT_EQ(i2v.mag_ratios.size(), 98u);
  EXPECT_DOUBLE_EQ(i2v.mag_ratios.front(), 0.90524);
}

// A valid minimal config; each error case edits one line of it.
const char* kMinimalConfig = R"(metrics:
  scale_factor: [1.0, 2.0, 2.0]
  resolution: 512
model:
  checkpoint_path: "./weights/model/x.safetensors"
  num_steps: 50
  guidance_weight: 5.0
  dit_params:
    in_visual_dim: 16
    out_visual_dim: 16
    time_dim: 512
    patch_size: [1, 2, 2]
    model_dim: 1792
    ff_dim: 7168
    num_text_blocks: 2
    num_visual_blocks: 32
    axes_dims: [16, 24, 24]
    future_key: 1
  attention:
    type: flash
    causal: false
    local: false
    glob: false
    window: 3
  vae:
    checkpoint_path: "./weights/vae/"
    name: "hunyuan"
  text_embedder:
    qwen:
      emb_size: 3584
      checkpoint_path: "./weights/text_encoder/"
      max_length: 256
    clip:
      checkpoint_path: "./weights/text_encoder2/"
      emb_size: 768
      max_length: 77
)";

// kMinimalConfig with the first occurrence of `text` replaced.
std::string edited(const std::string& text, const std::string& replacement) {
  std::string result = kMinimalConfig;
  const size_t at = result.find(text);
  EXPECT_NE(at, std::string::npos) << text;
  if (at != std::string::npos) result.replace(at, text.size(), replacement);
  return result;
}

TEST(KandinskyConfig, MinimalConfigUsesDefaults) {
  ScratchDir dir;
  write_text(dir.file("c.yaml"), kMinimalConfig);
  const auto config = load_kandinsky_config(dir.file("c.yaml"));
  EXPECT_FALSE(config.dit.visual_cond);
  EXPECT_EQ(config.dit.instruct_type, "");
  EXPECT_EQ(config.dit.in_text_dim2, 768);
  EXPECT_FALSE(config.attention.chunk);
  EXPECT_FALSE(config.scheduler_scale.has_value());
  EXPECT_TRUE(config.mag_ratios.empty());
}

TEST(KandinskyConfig, ErrorsNameTheKeyPath) {
  ScratchDir dir;
  const std::string path = dir.file("c.yaml");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {edited("    model_dim: 1792\n", ""), "missing key 'model.dit_params.model_dim'"},
      {edited("model_dim: 1792", "model_dim: wide"), "'model.dit_params.model_dim' must be an integer"},
      {edited("model_dim: 1792", "model_dim: 1792.5"), "'model.dit_params.model_dim' must be an integer"},
      {edited("model_dim: 1792", "model_dim: 1700"), "not a multiple of the head dim"},
      {edited("model_dim: 1792", "model_dim: [1]"), "'model.dit_params.model_dim' must be an integer"},
      {edited("causal: false", "causal: maybe"), "'model.attention.causal' must be a boolean"},
      {edited("axes_dims: [16, 24, 24]", "axes_dims: [16, 24]"), "'model.dit_params.axes_dims' must have 3 entries"},
      {edited("axes_dims: [16, 24, 24]", "axes_dims: [16, x, 24]"), "'model.dit_params.axes_dims' must be a list of integers (entry 1 is not)"},
      {edited("scale_factor: [1.0, 2.0, 2.0]", "scale_factor: 2"), "'metrics.scale_factor' must be a list"},
      {edited("type: flash", "type: nabla"), "missing key 'model.attention.P'"},
      {edited("type: flash", "type: sparse"), "'model.attention.type' must be \"flash\" or \"nabla\""},
      {edited("name: \"hunyuan\"", "name: \"sdxl\""), "'model.vae.name' must be \"hunyuan\" or \"flux\""},
      {edited("  vae:\n    checkpoint_path: \"./weights/vae/\"\n    name: \"hunyuan\"\n", ""), "missing key 'model.vae'"},
      {edited("    qwen:\n", "    qwen: 3\n    qwen_old:\n"), "'model.text_embedder.qwen' must be a mapping"},
      {edited("num_steps: 50", "num_steps: -1"), "'model.num_steps' must be positive"},
      {edited("    model_dim: 1792\n", "    model_dim: 1792\n    visual_cond: 3\n"), "'model.dit_params.visual_cond' must be a boolean"},
      {edited("metrics:\n", "magcache:\n  mag_ratios: [1, a]\nmetrics:\n"), "'magcache.mag_ratios' must be a list of numbers (entry 1 is not)"},
      {"model: [1, 2\n", "not valid YAML"},
      {"- 1\n- 2\n", "'(top level)' must be a mapping"},
  };
  for (const auto& [text, fragment] : cases) {
    SCOPED_TRACE(fragment);
    write_text(path, text);
    const std::string message = error_of([&] { load_kandinsky_config(path); });
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
    EXPECT_NE(message.find("c.yaml"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
  EXPECT_NE(error_of([&] { load_kandinsky_config(dir.file("absent.yaml")); }).find("absent.yaml: cannot open"),
            std::string::npos);
}

}  // namespace
}  // namespace k5
