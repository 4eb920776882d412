// LoRA adapters on the CrossDiT against PEFT and the official load_adapter (goldens from tools/golden/lora.py).
#include "models/crossdit/lora.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "io/kandinsky_config.h"
#include "io/safetensors.h"
#include "models/crossdit/crossdit_checks.h"
#include "support/context.h"
#include "support/model_folder.h"
#include "support/random.h"

namespace k5 {
namespace {

namespace fs = std::filesystem;
using test::lora_golden;

const DitParams& tiny_params() {
  static const KandinskyConfig config = load_kandinsky_config(test::crossdit_golden("t2i.yaml"));
  return config.dit;
}

TEST(Lora, OfficialKeysConfigAndPatternsFp32) {
  // Adapter a: "base_model.model." keys with ".default", config_lora.json with rank_pattern / alpha_pattern,
  // the time-embedding and modulation layers (float32 matrix-vector products) among its targets.
  EXPECT_LE(test::lora_error({lora_golden("a")}, "velocity_a", Precision::fp32, Device::CPU), 1e-4);
}

TEST(Lora, TwoAdaptersWithMultiplierFp32) {
  // Adapter b: "transformer." keys, adapter_config.json, rsLoRA, a regular expression for target_modules; given
  // as a file with ":0.5".
  EXPECT_LE(test::lora_error({lora_golden("a"), lora_golden("b/adapter_model.safetensors") + ":0.5"},
                             "velocity_a_b_half", Precision::fp32, Device::CPU),
            1e-4);
}

Tensor velocity(Precision precision, const std::vector<std::string>& loras) {
  return test::dit_velocity(test::kT2iNonSquare, precision, Device::CPU, "", loras);
}

TEST(Lora, Bf16) {
  EXPECT_LE(test::lora_error({lora_golden("a")}, "velocity_a", Precision::bf16, Device::CPU), 3e-2);
  // The merged weights are rounded to BF16 once, as the plain model's are: small adapters too stay within the
  // plain model's bf16 error of the float32 result (measured 0.2-0.4%).
  const double plain = test::relative_l2(velocity(Precision::bf16, {}), velocity(Precision::fp32, {}));
  for (const char* multiplier : {":0.1", ":0.001"}) {
    const std::vector<std::string> loras{lora_golden("a") + multiplier};
    EXPECT_LE(test::relative_l2(velocity(Precision::bf16, loras), velocity(Precision::fp32, loras)), 2 * plain)
        << multiplier << " (plain " << plain << ")";
  }
}

TEST(Lora, TriggerAndLayersLeftAlone) {
  const LoraAdapter a = load_lora({lora_golden("a"), 1.0f}, tiny_params());
  EXPECT_EQ(a.trigger, "orbit shot, ");
  EXPECT_EQ(fs::path(a.config).filename(), "config_lora.json");
  ASSERT_EQ(a.left_alone.size(), 1u);
  EXPECT_EQ(a.left_alone[0], "visual_transformer_blocks.0.cross_attention.to_key");
  const LoraAdapter b = load_lora({lora_golden("b"), 2.0f}, tiny_params());
  EXPECT_EQ(b.trigger, "");
  EXPECT_EQ(lora_triggers({a, b, a}), "orbit shot, ");  // each trigger once
  LoraAdapter c = a, d = a;
  c.trigger = "dolly in, ";
  d.trigger = "unused, ";
  d.multiplier = 0.0f;  // an adapter at multiplier 0 adds nothing, its trigger included
  EXPECT_EQ(lora_triggers({c, d, a}), "dolly in, orbit shot, ");
}

// PEFT's choice of layers (target_modules by name, exact or by last components, by regular expression with Python's
// \Z and a named group, and "all-linear" in either case; exclude_modules; layers_to_transform over one or two
// layers_pattern, one with a group of its own) and its scaling (rank_pattern, alpha_pattern, rsLoRA), as
// inject_adapter_in_model made them: every file has weights for every linear layer of the DiT.
TEST(Lora, TargetingAndScalingAsPeft) {
  std::ifstream stream(lora_golden("targeting/expected.json"));
  const nlohmann::json expected = nlohmann::json::parse(stream);
  ASSERT_FALSE(expected.empty());
  for (const auto& [name, layers] : expected.items()) {
    SCOPED_TRACE(name);
    const float multiplier = name == "patterns" ? 0.25f : 1.0f;
    const LoraAdapter adapter = load_lora({lora_golden("targeting/" + name), multiplier}, tiny_params());
    EXPECT_EQ(adapter.layers.size(), layers.size());
    for (const auto& [layer, scaling] : layers.items()) {
      const auto it = adapter.layers.find(layer);
      ASSERT_NE(it, adapter.layers.end()) << layer;
      EXPECT_NEAR(it->second.scale, multiplier * scaling.get<double>(), 1e-6 * scaling.get<double>()) << layer;
    }
    EXPECT_EQ(adapter.layers.size() + adapter.left_alone.size(), 36u);  // every linear layer of the tiny DiT
  }
}

// merge_lora in row blocks on several threads (the golden DiT's layers fit one block): a layer of several blocks
// with a partial last one, two adapters, BF16 and F32 out, against the sum in double precision.
TEST(Lora, MergeOverSeveralRowBlocks) {
  Context ctx = test::make_context(Precision::fp32);  // 2 threads
  const int64_t out_features = 700, in_features = 600;
  const Tensor weight = test::random_tensor({out_features, in_features}, 1, 1.0f, DType::BF16);
  std::vector<LoraAdapter> adapters(2);
  adapters[0].layers["layer"] = {test::random_tensor({4, in_features}, 2), test::random_tensor({out_features, 4}, 3),
                                 0.5f};
  adapters[1].layers["layer"] = {test::random_tensor({8, in_features}, 4, 1.0f, DType::BF16),
                                 test::random_tensor({out_features, 8}, 5, 1.0f, DType::BF16), -2.0f};
  const std::vector<float> w = weight.to_f32_vector();
  std::vector<double> expected(w.begin(), w.end());
  for (const LoraAdapter& adapter : adapters) {
    const LoraLayer& lora = adapter.layers.at("layer");
    const std::vector<float> down = lora.down.to_f32_vector(), up = lora.up.to_f32_vector();
    const int64_t rank = lora.down.size(0);
    for (int64_t o = 0; o < out_features; ++o)
      for (int64_t i = 0; i < in_features; ++i) {
        double sum = 0;
        for (int64_t k = 0; k < rank; ++k) sum += double(up[o * rank + k]) * down[k * in_features + i];
        expected[o * in_features + i] += double(lora.scale) * sum;
      }
  }
  const std::vector<float> merged = merge_lora(ctx, adapters, "layer", weight, DType::F32).to_f32_vector();
  const std::vector<float> rounded = merge_lora(ctx, adapters, "layer", weight, DType::BF16).to_f32_vector();
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_NEAR(merged[i], expected[i], 1e-4 * (1 + std::abs(expected[i]))) << "element " << i;
    ASSERT_NEAR(rounded[i], expected[i], std::abs(expected[i]) / 128 + 1e-4) << "element " << i;  // one BF16 ulp
  }
}

TEST(Lora, SpecParsing) {
  auto check = [](const std::string& text, const std::string& path, float multiplier) {
    const LoraSpec spec = parse_lora_spec(text);
    EXPECT_EQ(spec.path, path) << text;
    EXPECT_EQ(spec.multiplier, multiplier) << text;
  };
  check("a.safetensors", "a.safetensors", 1.0f);
  check("dir/a.safetensors:0.5", "dir/a.safetensors", 0.5f);
  check("a:-1.5", "a", -1.5f);
  check("c:/loras/a", "c:/loras/a", 1.0f);  // not a number after the colon: part of the path
  check("a:", "a:", 1.0f);
  check(":2", ":2", 1.0f);
  check("a:nan", "a:nan", 1.0f);
  check("a:1e39", "a:1e39", 1.0f);  // beyond float: not a multiplier
}

// Writes a one-layer adapter for `layer` (A [r, in], B [out, r]) under `dir`, optionally with a config.
void write_adapter(const fs::path& dir, const std::string& layer, int64_t rank, int64_t in, int64_t out,
                   const std::string& config = "", const std::vector<std::string>& extra_keys = {}) {
  fs::create_directories(dir);
  std::vector<std::pair<std::string, Tensor>> tensors{
      {layer + ".lora_A.weight", Tensor::zeros(DType::F32, {rank, in})},
      {layer + ".lora_B.weight", Tensor::zeros(DType::F32, {out, rank})}};
  for (const std::string& key : extra_keys) tensors.push_back({key, Tensor::zeros(DType::F32, {rank, in})});
  save_safetensors((dir / "lora.safetensors").string(), tensors);
  if (!config.empty()) std::ofstream(dir / "config_lora.json") << config;
}

void expect_error(const fs::path& path, const std::string& message, const DitParams& params = tiny_params()) {
  try {
    load_lora({path.string(), 1.0f}, params);
    ADD_FAILURE() << path << ": accepted, expected an error containing: " << message;
  } catch (const Error& error) {
    const std::string what = error.what();
    EXPECT_NE(what.find(message), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "not one line: " << what;
  }
}

TEST(Lora, BadAdaptersGiveOneLineErrors) {
  const test::TempDir dir("lora_bad");
  const std::string query = "visual_transformer_blocks.0.self_attention.to_query";
  const int64_t d = tiny_params().model_dim;
  expect_error(dir.path / "missing", "does not exist");
  fs::create_directories(dir.path / "empty");
  expect_error(dir.path / "empty", "holds 0 .safetensors files");
  write_adapter(dir.path / "ok", query, 2, d, d);
  EXPECT_EQ(load_lora({(dir.path / "ok").string(), 1.0f}, tiny_params()).layers.size(), 1u);
  write_adapter(dir.path / "unknown", "visual_transformer_blocks.7.self_attention.to_query", 2, d, d);
  expect_error(dir.path / "unknown", "which is not a linear layer of this DiT");
  write_adapter(dir.path / "norm", "visual_transformer_blocks.0.self_attention.query_norm", 2, d, d);
  expect_error(dir.path / "norm", "which is not a linear layer of this DiT");
  write_adapter(dir.path / "shape", query, 2, d + 1, d);
  expect_error(dir.path / "shape", "expected [r, 64] and [64, r]");
  write_adapter(dir.path / "dora", query, 2, d, d, "", {query + ".lora_magnitude_vector"});
  expect_error(dir.path / "dora", "is not a LoRA weight");
  write_adapter(dir.path / "rank", query, 2, d, d, R"({"r": 4, "lora_alpha": 4, "target_modules": ["to_query"]})");
  expect_error(dir.path / "rank", "has rank 2, but");
  write_adapter(dir.path / "use_dora", query, 2, d, d, R"({"r": 2, "use_dora": true})");
  expect_error(dir.path / "use_dora", "use_dora is not supported");
  write_adapter(dir.path / "regex", query, 2, d, d, R"({"r": 2, "target_modules": "(unclosed"})");
  expect_error(dir.path / "regex", "cannot read the pattern '(unclosed'");
  // Configs PEFT refuses, or under which it changes more than W by the low-rank product.
  const std::vector<std::pair<std::string, std::string>> refused{
      {R"({"r": 2})", "target_modules must name the layers"},
      {R"({"r": 2, "target_modules": []})", "target_modules must name the layers"},
      {R"({"r": 2, "target_modules": "to_.*", "layers_to_transform": [0]})", "need target_modules as a list"},
      {R"({"r": 2, "target_modules": ["to_query"], "layers_to_transform": "0"})", "must be an integer or a list"},
      {R"({"r": 2, "target_modules": ["to_query"], "layers_to_transform": [0]})", "targets none of the adapter's"},
      {R"({"r": 2, "target_modules": ["to_query"], "layers_to_transform": [0], "layers_pattern": []})",
       "targets none of the adapter's"},
      {R"({"r": 2, "target_modules": ["to_key"]})", "targets none of the adapter's"},
      {R"({"r": 2, "target_modules": ["to_query"], "init_lora_weights": "pissa"})", "rewrites the base weights"},
      {R"({"r": 2, "target_modules": ["to_query"], "modules_to_save": ["out_layer"]})", "modules_to_save is not"},
      {R"({"r": 2, "target_modules": ["to_query"], "bias": "all"})", "(trained biases) is not supported"},
      {R"({"r": 2, "target_modules": ["to_query"], "rank_pattern": {"to_query": 2.5}})", "a positive integer"},
      {R"({"r": 2, "target_modules": "(?i).*TO_QUERY"})", "Python-only syntax"},
      // Modules PEFT cannot adapt: the final layer block (also named out_layer), a whole block's children.
      {R"({"r": 2, "target_modules": ["to_query", "out_layer"]})", "selects 'out_layer', which is not a linear"},
      {R"({"r": 2, "target_modules": ".*visual_transformer_blocks\\.0\\..*"})", "which is not a linear layer"},
      {R"({"r": 2, "target_modules": ["to_query"], "layers_pattern": "visual_transformer_blocks"})",
       "layers_pattern needs layers_to_transform"},
  };
  for (size_t i = 0; i < refused.size(); ++i) {
    SCOPED_TRACE(refused[i].first);
    write_adapter(dir.path / ("refused" + std::to_string(i)), query, 2, d, d, refused[i].first);
    expect_error(dir.path / ("refused" + std::to_string(i)), refused[i].second);
  }
  {
    // The same weight twice, under two prefixes.
    fs::create_directories(dir.path / "twice");
    save_safetensors((dir.path / "twice" / "lora.safetensors").string(),
                     {{query + ".lora_A.weight", Tensor::zeros(DType::F32, {2, d})},
                      {query + ".lora_B.weight", Tensor::zeros(DType::F32, {d, 2})},
                      {"transformer." + query + ".lora_B.weight", Tensor::zeros(DType::F32, {d, 2})}});
    expect_error(dir.path / "twice", "repeats");
  }
  write_adapter(dir.path / "json", query, 2, d, d, R"({"r": 2,)");
  expect_error(dir.path / "json", "config_lora.json: not valid JSON");
  write_adapter(dir.path / "type", query, 2, d, d, R"({"r": "two"})");
  expect_error(dir.path / "type", "'r'");
  {
    fs::create_directories(dir.path / "half");
    save_safetensors((dir.path / "half" / "lora.safetensors").string(),
                     {{query + ".lora_A.weight", Tensor::zeros(DType::F32, {2, d})}});
    expect_error(dir.path / "half", "has lora_A without lora_B");
    save_safetensors((dir.path / "half" / "lora.safetensors").string(),
                     {{query + ".lora_A.weight", Tensor::zeros(DType::U8, {2, d})},
                      {query + ".lora_B.weight", Tensor::zeros(DType::F32, {d, 2})}});
    expect_error(dir.path / "half", "expected a float type");
    save_safetensors((dir.path / "half" / "lora.safetensors").string(),
                     {{query + ".lora_A.weight", Tensor::zeros(DType::F32, {d})},
                      {query + ".lora_B.weight", Tensor::zeros(DType::F32, {d, 0})}});
    expect_error(dir.path / "half", "expected [r, 64] and [64, r]");
  }
  // An adapter for a DiT of other sizes is refused.
  const KandinskyConfig other = load_kandinsky_config(test::crossdit_golden("t2v_cond.yaml"));
  write_adapter(dir.path / "other", "visual_embeddings.in_layer", 2, 16, d);
  expect_error(dir.path / "other", "expected [r, 36] and [64, r]", other.dit);
}

// Fuzz-style: adapter a's config with random edits (characters replaced, inserted, cut) loads or gives a k5 error,
// never another exception or a crash (the sanitizer build runs this too).
TEST(Lora, MangledConfigsLoadOrFailCleanly) {
  const test::TempDir dir("lora_fuzz");
  fs::copy_file(lora_golden("a/lora.safetensors"), dir.path / "lora.safetensors");
  std::ifstream in(lora_golden("a/config_lora.json"));
  const std::string original((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::mt19937 random(5);
  const std::string alphabet = "{}[]\":,.*()?|\\0123456789-eE truenallfs_r";
  int loaded = 0, refused = 0;
  for (int i = 0; i < 300; ++i) {
    std::string text = original;
    for (int edits = 1 + int(random() % 3); edits > 0 && !text.empty(); --edits) {
      const size_t at = random() % text.size();
      const char c = alphabet[random() % alphabet.size()];
      switch (random() % 3) {
        case 0:
          text[at] = c;
          break;
        case 1:
          text.insert(text.begin() + int64_t(at), c);
          break;
        default:
          text.resize(at);
          break;
      }
    }
    std::ofstream(dir.path / "config_lora.json", std::ios::trunc) << text;
    try {
      load_lora({dir.path.string(), 1.0f}, tiny_params());
      ++loaded;
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(loaded, 0);
}

// `forward dit --lora` and `forward sample --lora` end to end; a bad adapter is one line and no output file.
TEST(LoraCli, ForwardDitAndSample) {
  const test::K5Cli k5("lora_cli", "-q -t 2");
  const std::string out = k5.path("out.safetensors");
  const std::string inputs = k5.path("in.safetensors");
  {
    const auto golden = SafetensorsFile::open(test::crossdit_golden("t2i.safetensors"));
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const TensorInfo& info : golden->tensors())
      if (info.name != "velocity") tensors.push_back({info.name, golden->tensor(info.name)});
    save_safetensors(inputs, tensors);
  }
  const std::string base = "forward dit --config " + test::crossdit_golden("t2i.yaml") + " --weights " +
                           test::crossdit_golden("weights_plain.safetensors") + " --precision fp32 --inputs " + inputs +
                           " --output " + out;
  ASSERT_EQ(k5.run(base + " --lora " + lora_golden("a") + " --lora " + lora_golden("b") + ":0.5"), 0) << k5.err();
  EXPECT_LE(test::relative_l2(SafetensorsFile::open(out)->tensor("velocity"),
                              SafetensorsFile::open(lora_golden("velocity.safetensors"))->tensor("velocity_a_b_half")),
            1e-4);
  fs::remove(out);
  // forward sample: the same option (multiplier 0 leaves the weights exactly as they were).
  {
    const auto golden = SafetensorsFile::open(test::crossdit_golden("t2i.safetensors"));
    save_safetensors(k5.path("noise.safetensors"), {{"noise", golden->tensor("x")},
                                                    {"text_embed", golden->tensor("text_embed")},
                                                    {"pooled_text_embed", golden->tensor("pooled_text_embed")}});
  }
  auto sampled = [&](const std::string& lora) {
    EXPECT_EQ(k5.run("forward sample --config " + test::crossdit_golden("t2i.yaml") + " --weights " +
                     test::crossdit_golden("weights_plain.safetensors") + " --inputs " + k5.path("noise.safetensors") +
                     " --output " + out + " --steps 2 --guidance 1 --scheduler-scale 3 --precision fp32" + lora),
              0)
        << k5.err();
    const auto latents = SafetensorsFile::open(out)->tensor("latents").to_f32_vector();
    fs::remove(out);
    return latents;
  };
  const auto plain = sampled("");
  EXPECT_NE(sampled(" --lora " + lora_golden("a")), plain);
  EXPECT_EQ(sampled(" --lora " + lora_golden("a") + ":0"), plain);
  EXPECT_NE(k5.run(base + " --lora " + k5.path("nowhere.safetensors")), 0);
  const std::string message = k5.err();
  EXPECT_NE(message.find("does not exist"), std::string::npos) << message;
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 1) << message;
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace k5
