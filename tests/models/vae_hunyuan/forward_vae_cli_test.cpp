// `k5 forward vae-decode` / `vae-encode` end to end on the tiny goldens (tools/golden/vae.py).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "io/safetensors.h"
#include "support/compare.h"
#include "support/context.h"

namespace k5 {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  fs::path dir = fs::temp_directory_path() / ("k5_vae_cli_" + std::to_string(::getpid()));
  CliRun() { fs::create_directories(dir); }
  ~CliRun() { fs::remove_all(dir); }
  int run(const std::string& arguments) const {
    const std::string command = std::string(K5_BINARY) + " " + arguments + " -q -t 2 2>" + (dir / "stderr").string();
    return std::system(command.c_str());
  }
  // Writes tensor `name` of a golden cases file as `as` into an input file.
  std::string input(const std::string& cases, const std::string& name, const std::string& as) const {
    const auto file = SafetensorsFile::open(test::source_path("tests/golden/vae/" + cases));
    const std::string path = (dir / (as + ".safetensors")).string();
    save_safetensors(path, {{as, file->tensor(name)}});
    return path;
  }
  Tensor golden(const std::string& cases, const std::string& name) const {
    return SafetensorsFile::open(test::source_path("tests/golden/vae/" + cases))->tensor(name).to(DType::F32);
  }
};

std::string model_args(const std::string& vae) {
  return "--vae " + vae + " --config " + test::source_path("tests/golden/vae/" + vae + "_config.json") +
         " --weights " + test::source_path("tests/golden/vae/" + vae + "_weights.safetensors");
}

TEST(ForwardVaeCli, HunyuanDecodeTiledAndUntiled) {
  CliRun cli;
  const std::string in = cli.input("hunyuan_cases.safetensors", "decode.latents", "latents");
  const std::string out = (cli.dir / "out.safetensors").string();
  ASSERT_EQ(cli.run("forward vae-decode " + model_args("hunyuan") + " --inputs " + in + " --output " + out +
                    " --no-tile"),
            0);
  EXPECT_LE(test::relative_l2(SafetensorsFile::open(out)->tensor("sample").to(DType::F32),
                              cli.golden("hunyuan_cases.safetensors", "decode.untiled")),
            1e-4);
  ASSERT_EQ(cli.run("forward vae-decode " + model_args("hunyuan") + " --inputs " + in + " --output " + out +
                    " --tile-height 16 --tile-width 16 --tile-stride-height 12 --tile-stride-width 12"
                    " --tile-frames 8 --tile-stride-frames 4"),
            0);
  EXPECT_LE(test::relative_l2(SafetensorsFile::open(out)->tensor("sample").to(DType::F32),
                              cli.golden("hunyuan_cases.safetensors", "decode.tiled")),
            1e-4);
  ASSERT_EQ(cli.run("forward vae-decode " + model_args("hunyuan") + " --inputs " + in + " --output " + out +
                    " --tile-height 16 --tile-width 16 --tile-stride-height 12 --tile-stride-width 12"
                    " --tile-frames 8 --tile-stride-frames 4 --by-frames on"),
            0);
  EXPECT_LE(test::relative_l2(SafetensorsFile::open(out)->tensor("sample").to(DType::F32),
                              cli.golden("hunyuan_cases.safetensors", "decode.tiled")),
            1e-4);
  EXPECT_NE(cli.run("forward vae-decode " + model_args("hunyuan") + " --inputs " + in + " --output " + out +
                    " --by-frames sometimes"),
            0);
}

TEST(ForwardVaeCli, FluxEncode) {
  CliRun cli;
  const std::string in = cli.input("flux_cases.safetensors", "encode.sample", "sample");
  const std::string out = (cli.dir / "out.safetensors").string();
  ASSERT_EQ(cli.run("forward vae-encode " + model_args("flux") + " --inputs " + in + " --output " + out), 0);
  const auto file = SafetensorsFile::open(out);
  EXPECT_LE(test::relative_l2(file->tensor("latent_mean").to(DType::F32),
                              cli.golden("flux_cases.safetensors", "encode.untiled.mean")),
            1e-4);
  EXPECT_LE(test::relative_l2(file->tensor("latent_logvar").to(DType::F32),
                              cli.golden("flux_cases.safetensors", "encode.untiled.logvar")),
            1e-4);
}

// --device cuda: the same results on a GPU (tiled decode, untiled encode); without one (this machine, CI) one
// line saying so and no output file.
TEST(ForwardVaeCli, DeviceCuda) {
  CliRun cli;
  const std::string latents = cli.input("hunyuan_cases.safetensors", "decode.latents", "latents");
  const std::string sample = cli.input("flux_cases.safetensors", "encode.sample", "sample");
  const std::string out = (cli.dir / "out.safetensors").string();
  const int decode_status = cli.run("forward vae-decode --device cuda " + model_args("hunyuan") + " --inputs " +
                                    latents + " --output " + out +
                                    " --tile-height 16 --tile-width 16 --tile-stride-height 12 --tile-stride-width 12"
                                    " --tile-frames 8 --tile-stride-frames 4");
  if (!test::gpu_available()) {
    EXPECT_NE(decode_status, 0);
    std::ifstream stderr_file(cli.dir / "stderr");
    std::stringstream message;
    message << stderr_file.rdbuf();
    EXPECT_NE(message.str().find("--device cuda: "), std::string::npos) << message.str();
    EXPECT_EQ(message.str().find("does not run on the GPU yet"), std::string::npos) << message.str();
    EXPECT_FALSE(fs::exists(out));
    return;
  }
  ASSERT_EQ(decode_status, 0);
  EXPECT_LE(test::relative_l2(SafetensorsFile::open(out)->tensor("sample").to(DType::F32),
                              cli.golden("hunyuan_cases.safetensors", "decode.tiled")),
            1e-4);
  ASSERT_EQ(cli.run("forward vae-encode --device cuda " + model_args("flux") + " --inputs " + sample + " --output " +
                    out),
            0);
  EXPECT_LE(test::relative_l2(SafetensorsFile::open(out)->tensor("latent_mean").to(DType::F32),
                              cli.golden("flux_cases.safetensors", "encode.untiled.mean")),
            1e-4);
}

TEST(ForwardVaeCli, BadInputFailsWithoutOutput) {
  CliRun cli;
  const std::string out = (cli.dir / "out.safetensors").string();
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
