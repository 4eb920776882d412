// `k5 forward vae-decode` / `vae-encode` end to end on the tiny goldens (tools/golden/vae.py).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "io/safetensors.h"
#include "support/compare.h"
#include "support/context.h"
#include "support/model_folder.h"

namespace k5 {
namespace {

namespace fs = std::filesystem;

std::string golden_path(const std::string& name) { return test::source_path("tests/golden/vae/" + name); }

struct CliRun : test::K5Cli {
  CliRun() : K5Cli("vae_cli") {}
  std::string out = path("out.safetensors");
  // Writes tensor `name` of a golden cases file as `as` into an input file.
  std::string input(const std::string& cases, const std::string& name, const std::string& as) const {
    const std::string input_path = path(as + ".safetensors");
    save_safetensors(input_path, {{as, SafetensorsFile::open(golden_path(cases))->tensor(name)}});
    return input_path;
  }
  // Relative L2 error of tensor `name` of the output file against tensor `expected` of a golden cases file.
  double output_error(const std::string& name, const std::string& cases, const std::string& expected) const {
    return test::relative_l2(SafetensorsFile::open(out)->tensor(name).to(DType::F32),
                             SafetensorsFile::open(golden_path(cases))->tensor(expected).to(DType::F32));
  }
};

std::string model_args(const std::string& vae) {
  return "--vae " + vae + " --config " + golden_path(vae + "_config.json") + " --weights " +
         golden_path(vae + "_weights.safetensors");
}

// The golden's small tiles (the generator's apply_tiling((1, 9, 16, 16), (4, 12, 12))).
const std::string kSmallTiles =
    " --tile-height 16 --tile-width 16 --tile-stride-height 12 --tile-stride-width 12 --tile-frames 8"
    " --tile-stride-frames 4";

TEST(ForwardVaeCli, HunyuanDecodeTiledAndUntiled) {
  const CliRun cli;
  const std::string decode = "forward vae-decode " + model_args("hunyuan") + " --inputs " +
                             cli.input("hunyuan_cases.safetensors", "decode.latents", "latents") + " --output " +
                             cli.out;
  ASSERT_EQ(cli.run(decode + " --no-tile"), 0) << cli.err();
  EXPECT_LE(cli.output_error("sample", "hunyuan_cases.safetensors", "decode.untiled"), 1e-4);
  ASSERT_EQ(cli.run(decode + kSmallTiles), 0) << cli.err();
  EXPECT_LE(cli.output_error("sample", "hunyuan_cases.safetensors", "decode.tiled"), 1e-4);
  ASSERT_EQ(cli.run(decode + kSmallTiles + " --by-frames on"), 0) << cli.err();
  EXPECT_LE(cli.output_error("sample", "hunyuan_cases.safetensors", "decode.tiled"), 1e-4);
  EXPECT_NE(cli.run(decode + " --by-frames sometimes"), 0);
}

TEST(ForwardVaeCli, FluxEncode) {
  const CliRun cli;
  const std::string in = cli.input("flux_cases.safetensors", "encode.sample", "sample");
  ASSERT_EQ(cli.run("forward vae-encode " + model_args("flux") + " --inputs " + in + " --output " + cli.out), 0)
      << cli.err();
  EXPECT_LE(cli.output_error("latent_mean", "flux_cases.safetensors", "encode.untiled.mean"), 1e-4);
  EXPECT_LE(cli.output_error("latent_logvar", "flux_cases.safetensors", "encode.untiled.logvar"), 1e-4);
}

// --device cuda: the same results on a GPU (tiled decode, untiled encode) in fp32 precision (bf16, the default,
// convolves in TF32 there); without a GPU (this machine, CI) one line saying so and no output file.
TEST(ForwardVaeCli, DeviceCuda) {
  const CliRun cli;
  const std::string latents = cli.input("hunyuan_cases.safetensors", "decode.latents", "latents");
  const std::string sample = cli.input("flux_cases.safetensors", "encode.sample", "sample");
  const int decode_status = cli.run("forward vae-decode --device cuda --precision fp32 " + model_args("hunyuan") +
                                    " --inputs " + latents + " --output " + cli.out + kSmallTiles);
  if (!test::gpu_available()) {
    EXPECT_NE(decode_status, 0);
    const std::string message = cli.err();
    EXPECT_NE(message.find("--device cuda: "), std::string::npos) << message;
    EXPECT_EQ(message.find("does not run on the GPU yet"), std::string::npos) << message;
    EXPECT_FALSE(fs::exists(cli.out));
    return;
  }
  ASSERT_EQ(decode_status, 0) << cli.err();
  EXPECT_LE(cli.output_error("sample", "hunyuan_cases.safetensors", "decode.tiled"), 1e-4);
  ASSERT_EQ(cli.run("forward vae-encode --device cuda --precision fp32 " + model_args("flux") + " --inputs " + sample +
                    " --output " + cli.out),
            0)
      << cli.err();
  EXPECT_LE(cli.output_error("latent_mean", "flux_cases.safetensors", "encode.untiled.mean"), 1e-4);
}

TEST(ForwardVaeCli, BadInputFailsWithoutOutput) {
  const CliRun cli;
  const std::string& out = cli.out;
  // Wrong tensor name, then wrong rank (FLUX latents given to the video VAE).
  const std::string misnamed = cli.input("hunyuan_cases.safetensors", "decode.latents", "not_latents");
  EXPECT_NE(cli.run("forward vae-decode " + model_args("hunyuan") + " --inputs " + misnamed + " --output " + out), 0);
  const std::string image_latents = cli.input("flux_cases.safetensors", "decode.latents", "latents");
  EXPECT_NE(cli.run("forward vae-decode " + model_args("hunyuan") + " --inputs " + image_latents + " --output " + out),
            0);
  EXPECT_NE(cli.run("forward vae-decode " + model_args("flux") + " --inputs /nonexistent.safetensors --output " + out),
            0);
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace k5
