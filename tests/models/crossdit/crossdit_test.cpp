// CrossDiT and sampler parity against the official code (goldens from tools/golden/crossdit.py).
#include <gtest/gtest.h>

#include <filesystem>

#include "core/context.h"
#include "io/kandinsky_config.h"
#include "io/safetensors.h"
#include "models/crossdit/crossdit_checks.h"
#include "models/crossdit/nabla.h"
#include "pipelines/sampler.h"
#include "support/compare.h"
#include "support/context.h"
#include "support/model_folder.h"

namespace k5 {
namespace {

std::string golden(const std::string& name) { return test::crossdit_golden(name); }

using test::make_context;

double dit_error(const test::DitCase& c, Precision precision) { return test::dit_error(c, precision, Device::CPU); }

TEST(CrossDit, DenseT2vVisualCondPaddedMaskFp32) { EXPECT_LE(dit_error(test::kDenseT2vCond, Precision::fp32), 1e-4); }

TEST(CrossDit, T2iNonSquareFp32) { EXPECT_LE(dit_error(test::kT2iNonSquare, Precision::fp32), 1e-4); }

TEST(CrossDit, NablaOfficialWindowsFp32) { EXPECT_LE(dit_error(test::kNablaOfficialWindows, Precision::fp32), 1e-4); }

TEST(CrossDit, NablaSparseFp32) { EXPECT_LE(dit_error(test::kNablaSparse, Precision::fp32), 1e-4); }

TEST(CrossDit, DenseT2vBf16) { EXPECT_LE(dit_error(test::kDenseT2vCond, Precision::bf16), 3e-2); }

TEST(CrossDit, NablaSparseBf16) { EXPECT_LE(dit_error(test::kNablaSparse, Precision::bf16), 3e-2); }

TEST(CrossDitInt8, MatchesTheOfficialCodeOnTheSameWeightsFp32) {
  // The official model on the weights k5's int8 stands for (tools/golden/dit_int8.py): the quantisation and the
  // int8 GEMMs are exact up to float32 rounding.
  EXPECT_LE(test::int8_error(test::kT2iNonSquare, Precision::fp32, Device::CPU), 1e-4);
  EXPECT_LE(test::int8_error(test::kDenseT2vCond, Precision::fp32, Device::CPU), 1e-4);
}

TEST(CrossDitInt8, Bf16) { EXPECT_LE(test::int8_error(test::kDenseT2vCond, Precision::bf16, Device::CPU), 3e-2); }

TEST(CrossDitInt8, LoraMergedBeforeQuantising) {
  const Tensor velocity = test::dit_velocity(test::kT2iNonSquare, Precision::fp32, Device::CPU, "",
                                             {test::lora_golden("a")}, /*int8_weights=*/true);
  EXPECT_LE(test::relative_l2(velocity, SafetensorsFile::open(golden("int8.safetensors"))->tensor("t2i_lora_a")), 1e-4);
}

TEST(CrossDitInt8, QuantisesTheBlocksGemmLayersOnly) {
  const KandinskyConfig config = load_kandinsky_config(golden("t2v_cond.yaml"));
  const Checkpoint checkpoint = Checkpoint::open(golden("weights_cond.safetensors"));
  const CrossDitWeights w = load_crossdit_weights(checkpoint, config.dit, Precision::bf16, Device::CPU, {}, true);
  for (const ops::LinearLayer* layer :
       {&w.text_blocks[0].self_attention.to_query, &w.text_blocks[0].feed_forward.out_layer,
        &w.visual_blocks[1].cross_attention.out_layer, &w.visual_blocks[1].feed_forward.in_layer}) {
    EXPECT_TRUE(layer->is_int8());
    EXPECT_FALSE(layer->weight.defined());
  }
  for (const ops::LinearLayer* layer :
       {&w.text_in, &w.visual_in, &w.out_linear, &w.visual_blocks[0].modulation, &w.time_in}) {
    EXPECT_FALSE(layer->is_int8());
    EXPECT_TRUE(layer->weight.defined());
  }
  EXPECT_TRUE(w.visual_blocks[0].self_attention.to_key.bias.defined());  // biases stay float32
}

TEST(CrossDit, DiffusersPrefixedKeysLoad) {
  // diffusers' Kandinsky5Transformer3DModel uses the official module names; a "transformer." prefix (a
  // pipeline-level state dict) must load too.
  const test::TempDir dir("crossdit_prefixed");
  const std::string path = (dir.path / "weights.safetensors").string();
  test::save_renamed_copy(golden("weights_plain.safetensors"), path,
                          [](const std::string& name) { return "transformer." + name; });
  EXPECT_LE(test::dit_error(test::kT2iNonSquare, Precision::fp32, Device::CPU, path), 1e-4);
}

TEST(CrossDit, RefusesMissingAndUnknownKeys) {
  const auto file = SafetensorsFile::open(golden("weights_plain.safetensors"));
  const KandinskyConfig config = load_kandinsky_config(golden("t2i.yaml"));
  const test::TempDir dir("crossdit_bad");
  const std::string path = (dir.path / "weights.safetensors").string();
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const TensorInfo& info : file->tensors())
    if (info.name != "out_layer.out_layer.bias") tensors.push_back({info.name, file->tensor(info.name)});
  save_safetensors(path, tensors);
  try {
    CrossDit::load(config, path, Precision::fp32);
    FAIL() << "missing key accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("missing DiT key 'out_layer.out_layer.bias' (expected shape [16])"),
              std::string::npos)
        << error.what();
  }
  tensors.push_back({"out_layer.out_layer.bias", file->tensor("out_layer.out_layer.bias")});
  tensors.push_back({"extra.weight", file->tensor("out_layer.out_layer.bias")});
  save_safetensors(path, tensors);
  EXPECT_THROW(CrossDit::load(config, path, Precision::fp32), Error);
  // A config whose shapes disagree with the checkpoint.
  EXPECT_THROW(CrossDit::load(load_kandinsky_config(golden("t2v_cond.yaml")), golden("weights_plain.safetensors"),
                              Precision::fp32),
               Error);
}

TEST(CrossDitNabla, FractalOrderAndSta) {
  const std::vector<int64_t> order = fractal_order(1, 8, 16);
  EXPECT_EQ(order[0], 0);
  EXPECT_EQ(order[8], 16);  // second row of the first tile
  EXPECT_EQ(order[64], 8);  // first token of the second tile
  const Tensor sta = sta_block_mask(3, 2, 2, 3, 1, 1);
  EXPECT_EQ(sta.data<uint8_t>()[0 * 12 + 4], 1);  // t distance 1 within wT 3
  EXPECT_EQ(sta.data<uint8_t>()[0 * 12 + 8], 0);  // t distance 2
  EXPECT_EQ(sta.data<uint8_t>()[0 * 12 + 1], 0);  // w distance 1 outside wW 1
  EXPECT_THROW(fractal_order(1, 12, 16), Error);
}

Tensor run_sample(const std::string& config_name, const std::string& case_name, int steps, double guidance,
                  double scale, Tensor& expected) {
  Context ctx = make_context(Precision::fp32);
  const KandinskyConfig config = load_kandinsky_config(golden(config_name + ".yaml"));
  const CrossDit dit = CrossDit::load(config, golden("weights_cond.safetensors"), Precision::fp32);
  const DitInputFile file(golden(case_name + ".safetensors"),
                          {"noise", "text_embed", "pooled_text_embed", "attention_mask", "null_text_embed",
                           "null_pooled_text_embed", "null_attention_mask", "first_frame", "edit_latent", "latents"});
  SampleRequest r;
  r.noise = file.float_tensor("noise");
  r.positive = {file.float_tensor("text_embed"), file.float_tensor("pooled_text_embed"), Tensor()};
  r.positive.attention_mask = file.mask("attention_mask", r.positive.text_embed.size(0));
  r.negative = {file.float_tensor("null_text_embed"), file.float_tensor("null_pooled_text_embed"), Tensor()};
  r.negative.attention_mask = file.mask("null_attention_mask", r.negative.text_embed.size(0));
  r.first_frame = file.optional_float("first_frame");
  r.edit_latent = file.optional_float("edit_latent");
  r.steps = steps;
  r.guidance = guidance;
  r.scheduler_scale = scale;
  expected = file.float_tensor("latents");
  return sample(ctx, dit, r);
}

TEST(CrossDitSampler, I2vFirstFrameCfgThreeSteps) {
  Tensor expected;
  const Tensor latents = run_sample("t2v_cond", "sample_i2v", 3, 3.0, 5.0, expected);
  EXPECT_LE(test::relative_l2(latents, expected), 1e-3);
}

TEST(CrossDitSampler, I2iEditLatent) {
  Tensor expected;
  const Tensor latents = run_sample("i2i", "sample_i2i", 3, 2.0, 3.0, expected);
  EXPECT_LE(test::relative_l2(latents, expected), 1e-3);
}

TEST(CrossDitSampler, ShiftedGrid) {
  const std::vector<float> grid = shifted_time_grid(2, 3.0);
  ASSERT_EQ(grid.size(), 3u);
  EXPECT_FLOAT_EQ(grid[0], 1.0f);
  EXPECT_FLOAT_EQ(grid[1], 1.5f / 2.0f);  // 3 * 0.5 / (1 + 2 * 0.5)
  EXPECT_FLOAT_EQ(grid[2], 0.0f);
}

// The CLI end to end on one case, and its error paths (one line, non-zero, no output file). Each test runs k5 in
// its own temporary folder: ctest runs tests in parallel.
TEST(CrossDitCli, ForwardDitEndToEndAndErrors) {
  const test::K5Cli k5("dit_cli", "-q");
  const std::string out = k5.path("out.safetensors");
  const std::string base = "forward dit --config " + golden("t2v_cond.yaml") + " --weights " +
                           golden("weights_cond.safetensors") + " --precision fp32 --threads 2";
  // The golden file also holds the expected 'velocity', an unknown tensor for `forward dit`: build input files
  // from it: the valid inputs, then missing 'time', a wrong x shape and an unknown key.
  const auto golden_file = SafetensorsFile::open(golden("t2v_cond.safetensors"));
  auto write_inputs = [&](const std::string& path, const std::string& drop, const std::string& extra, bool bad_x) {
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const TensorInfo& info : golden_file->tensors()) {
      if (info.name == "velocity" || info.name == drop) continue;
      Tensor t = golden_file->tensor(info.name);
      if (bad_x && info.name == "x") t = t.slice(3, 0, 4);
      tensors.push_back({info.name, t});
    }
    if (!extra.empty()) tensors.push_back({extra, golden_file->tensor("time")});
    save_safetensors(path, tensors);
  };
  const std::string good = k5.path("in.safetensors");
  write_inputs(good, "", "", false);
  ASSERT_EQ(k5.run(base + " --inputs " + good + " --output " + out), 0);
  {
    const auto result = SafetensorsFile::open(out);
    EXPECT_LE(test::relative_l2(result->tensor("velocity"), golden_file->tensor("velocity")), 1e-4);
  }
  std::filesystem::remove(out);
  // --device cuda: the same velocity on a GPU; without one (this machine, CI) one line saying so and no file.
  const int cuda_status = k5.run(base + " --device cuda --inputs " + good + " --output " + out);
  std::string message = k5.err();
  if (test::gpu_available()) {
    ASSERT_EQ(cuda_status, 0) << message;
    EXPECT_LE(test::relative_l2(SafetensorsFile::open(out)->tensor("velocity"), golden_file->tensor("velocity")), 1e-4);
    std::filesystem::remove(out);
  } else {
    EXPECT_NE(cuda_status, 0);
    EXPECT_NE(message.find("--device cuda: "), std::string::npos) << message;
    EXPECT_FALSE(std::filesystem::exists(out));
  }

  const std::string bad = k5.path("bad.safetensors");
  write_inputs(bad, "time", "", false);
  EXPECT_NE(k5.run(base + " --inputs " + bad + " --output " + out), 0);
  message = k5.err();
  EXPECT_NE(message.find("missing input tensor 'time'"), std::string::npos) << message;
  write_inputs(bad, "", "", true);
  EXPECT_NE(k5.run(base + " --inputs " + bad + " --output " + out), 0);
  message = k5.err();
  EXPECT_NE(message.find("input 'x' has shape"), std::string::npos) << message;
  write_inputs(bad, "", "bogus", false);
  EXPECT_NE(k5.run(base + " --inputs " + bad + " --output " + out), 0);
  message = k5.err();
  EXPECT_NE(message.find("unknown input tensor 'bogus'"), std::string::npos) << message;
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(CrossDitCli, ForwardSampleEndToEnd) {
  const test::K5Cli k5("sample_cli", "-q");
  const std::string out = k5.path("out.safetensors");
  const auto golden_file = SafetensorsFile::open(golden("sample_i2v.safetensors"));
  std::vector<std::pair<std::string, Tensor>> inputs;
  for (const TensorInfo& info : golden_file->tensors())
    if (info.name != "latents") inputs.push_back({info.name, golden_file->tensor(info.name)});
  const std::string in = k5.path("in.safetensors");
  save_safetensors(in, inputs);
  ASSERT_EQ(k5.run("forward sample --config " + golden("t2v_cond.yaml") + " --weights " +
                   golden("weights_cond.safetensors") + " --inputs " + in + " --output " + out +
                   " --steps 3 --guidance 3 --scheduler-scale 5 --precision fp32 --threads 2"),
            0);
  const auto result = SafetensorsFile::open(out);
  EXPECT_LE(test::relative_l2(result->tensor("latents"), golden_file->tensor("latents")), 1e-3);
}

}  // namespace
}  // namespace k5
