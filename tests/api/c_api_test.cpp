// The C API (include/k5/k5.h) through tests/api/c_api_calls.c, a C program's use of it: an image whose file is
// byte for byte what `k5 generate` writes with the same settings (and the same pixels again with the models kept
// loaded, and after unloading them), a video, and the error codes.
#include <gtest/gtest.h>

#include <filesystem>

#include "k5/k5.h"
#include "support/model_folder.h"

extern "C" {
const char* c_api_generates_an_image(const char* model_dir, const char* output);
const char* c_api_generates_a_video(const char* model_dir);
const char* c_api_reports_errors(const char* model_dir, const char* output);
}

namespace k5 {
namespace {

namespace fs = std::filesystem;

using test::demo_model;

TEST(CApi, ImageIsWhatTheCommandLineWrites) {
  const test::K5Cli cli("c-api");
  const char* failure = c_api_generates_an_image(demo_model().c_str(), cli.path("api.png").c_str());
  ASSERT_EQ(failure, nullptr) << failure;
  ASSERT_EQ(cli.run("generate -m " + demo_model() +
                    " --config k5_tiny_t2i -p 'a cat in a hat' --steps 2 -s 3 --rng cpu "
                    "--no-expand-prompt --device cpu -o " +
                    cli.path("cli.png")),
            0)
      << cli.err();
  EXPECT_EQ(test::read_text(cli.path("api.png")), test::read_text(cli.path("cli.png")));  // pixels and metadata
}

TEST(CApi, Video) {
  const char* failure = c_api_generates_a_video(demo_model().c_str());
  EXPECT_EQ(failure, nullptr) << failure;
}

TEST(CApi, ErrorsAreCodesWithOneLine) {
  const test::K5Cli cli("c-api-errors");
  const char* failure = c_api_reports_errors(demo_model().c_str(), cli.path("cancelled.png").c_str());
  EXPECT_EQ(failure, nullptr) << failure;
  EXPECT_FALSE(fs::exists(cli.path("cancelled.png")));
  EXPECT_STREQ(k5_version(), K5_VERSION);
}

}  // namespace
}  // namespace k5
