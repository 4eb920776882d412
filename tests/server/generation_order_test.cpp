// The JSON body of POST /v1/generations (src/server/generation_order): every field read with its type, unknown
// and ill-typed fields refused by name, and mangled bodies never crash.
#include "server/generation_order.h"

#include <gtest/gtest.h>

#include <random>

#include "core/error.h"

namespace k5 {
namespace {

std::string error_of(const std::string& body) {
  try {
    parse_generation_order(body);
  } catch (const Error& e) {
    return e.what();
  }
  return "<accepted>";
}

TEST(GenerationOrder, EveryField) {
  const GenerationOrder order = parse_generation_order(R"({
    "prompt": "a fox", "negative_prompt": "", "config": "k5_tiny_t2v_5s", "width": 768, "height": 512,
    "frames": 121, "steps": 50.0, "cfg_scale": 5, "scheduler_scale": 10.5, "seed": 42, "rng": "cpu",
    "init_img": "data:image/png;base64,Zm9v", "magcache": true, "text_only_edit": true, "expand_prompt": false,
    "vae_by_frames": "on", "lora": ["style:0.5", "other"], "format": "jpeg", "quality": 80, "crf": 18})");
  const GenerationRequest& r = order.request;
  EXPECT_EQ(r.prompt, "a fox");
  ASSERT_TRUE(r.negative_prompt.has_value());
  EXPECT_EQ(*r.negative_prompt, "");
  EXPECT_EQ(order.config, "k5_tiny_t2v_5s");
  EXPECT_EQ(parse_generation_order(R"({"prompt": "a", "seed": 9223372036854775807})").request.seed,
            9223372036854775807u);
  EXPECT_EQ(parse_generation_order(R"({"prompt": "a", "seed": 4.0e18})").request.seed, 4000000000000000000u);
  EXPECT_EQ(r.width, 768);
  EXPECT_EQ(r.height, 512);
  EXPECT_EQ(r.frames, 121);
  EXPECT_EQ(r.steps, 50);
  EXPECT_EQ(r.guidance, 5.0);
  EXPECT_EQ(r.scheduler_scale, 10.5);
  EXPECT_EQ(r.seed, 42u);
  EXPECT_FALSE(order.random_seed);
  EXPECT_EQ(r.rng, RngDevice::cpu);
  EXPECT_EQ(order.init_image_bytes, "foo");
  EXPECT_TRUE(r.init_image.empty());
  EXPECT_TRUE(r.magcache);
  EXPECT_TRUE(r.text_only_edit);
  EXPECT_FALSE(r.expand_prompt);
  EXPECT_EQ(r.vae_by_frames, std::optional<bool>(true));
  EXPECT_EQ(r.loras, (std::vector<std::string>{"style:0.5", "other"}));
  EXPECT_EQ(order.format, "jpg");
  EXPECT_EQ(order.quality, 80);
  EXPECT_EQ(order.crf, 18);
}

TEST(GenerationOrder, DefaultsAreTheCommandLines) {
  const GenerationOrder order = parse_generation_order(R"({"prompt": "a fox", "seed": -1, "width": null})");
  const GenerationRequest defaults;
  EXPECT_TRUE(order.random_seed);
  EXPECT_FALSE(order.request.negative_prompt.has_value());
  EXPECT_EQ(order.request.width, 0);
  EXPECT_EQ(order.request.rng, defaults.rng);
  EXPECT_TRUE(order.request.expand_prompt);
  EXPECT_FALSE(order.request.vae_by_frames.has_value());
  EXPECT_TRUE(order.format.empty());
  EXPECT_TRUE(order.config.empty());
}

TEST(GenerationOrder, BadFieldsAreNamed) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "not JSON"},
      {"{\"prompt\": \"a\",", "not JSON"},
      {"[1, 2]", "must be a JSON object"},
      {"{}", "'prompt' is required"},
      {R"({"prompt": ""})", "'prompt' must not be empty"},
      {R"({"prompt": 5})", "'prompt' must be a string"},
      {R"({"prompt": "a", "promt": 1})", "unknown field 'promt'"},
      {R"({"prompt": "a", "width": 7.5})", "'width' must be a whole number"},
      {R"({"prompt": "a", "width": -2})", "'width' must be within 1.."},
      {R"({"prompt": "a", "steps": 1e30})", "'steps' must be within"},
      {R"({"prompt": "a", "steps": "20"})", "'steps' must be a whole number"},
      {R"({"prompt": "a", "seed": -2})", "'seed' must be within -1.."},
      {R"({"prompt": "a", "seed": 9223372036854775808})", "'seed' must be within -1.."},
      {R"({"prompt": "a", "seed": 18446744073709551615})", "'seed' must be within -1.."},
      {R"({"prompt": "a", "seed": 9.3e18})", "'seed' must be within -1.."},
      {R"({"prompt": "a", "seed": -9.3e18})", "'seed' must be within -1.."},
      {R"({"prompt": "a", "cfg_scale": 1e400})", "out of range"},
      {R"({"prompt": "a", "cfg_scale": "high"})", "'cfg_scale' must be a number"},
      {R"({"prompt": "a", "rng": "gpu"})", "'rng' must be one of cpu, cuda"},
      {R"({"prompt": "a", "magcache": 1})", "'magcache' must be true or false"},
      {R"({"prompt": "a", "init_img": "not base64!"})", "field 'init_img': not base64"},
      {R"({"prompt": "a", "init_img": ""})", "'init_img' is empty"},
      {R"({"prompt": "a", "lora": "style"})", "'lora' must be a list"},
      {R"({"prompt": "a", "lora": [1]})", "'lora' must be a list"},
      {R"({"prompt": "a", "format": "gif"})", "'format' must be one of"},
      {R"({"prompt": "a", "quality": 0})", "'quality' must be within 1..100"},
      {R"({"prompt": "a", "crf": 52})", "'crf' must be within 0..51"},
      {R"({"prompt": "a", "config": "../secret"})", "not a path"},
      {R"({"prompt": "a", "config": "/etc/k5.yaml"})", "not a path"},
  };
  for (const auto& [body, expected] : cases)
    EXPECT_NE(error_of(body).find(expected), std::string::npos) << body << " -> " << error_of(body);
}

TEST(GenerationOrder, MangledBodiesNeverCrash) {
  const std::string valid =
      R"({"prompt": "a fox", "width": 768, "height": 512, "seed": 4, "lora": ["a:0.5"], "init_img": "Zm9v"})";
  std::mt19937 random(11);
  for (int i = 0; i < 3000; ++i) {
    std::string body = valid;
    for (int edits = 1 + int(random() % 4); edits > 0; --edits) {
      const size_t at = random() % body.size();
      switch (random() % 3) {
        case 0:
          body[at] = char(random() % 256);
          break;
        case 1:
          body.erase(at, 1 + random() % 8);
          break;
        default:
          body.insert(body.begin() + std::ptrdiff_t(at), "{}[]\",:0-e."[random() % 11]);
      }
      if (body.empty()) body.push_back('{');
    }
    try {
      parse_generation_order(body);
    } catch (const Error&) {
    }
  }
}

}  // namespace
}  // namespace k5
