// The JSON body of POST /v1/generations (src/server/generation_order): every field read with its type, unknown
// and ill-typed fields refused by name, and mangled bodies never crash.
#include "server/generation_order.h"

#include <gtest/gtest.h>

#include <functional>
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
    try {
      parse_images_order(body);
    } catch (const Error&) {
    }
  }
}

// OpenAI's Images API fields in k5's terms; k5's own fields beside them.
TEST(GenerationOrder, OpenAiImagesFields) {
  const ImagesOrder images = parse_images_order(
      R"({"prompt": "a fox", "model": "k5_lite_t2i_sft_hd", "n": 3, "size": "1408x640", "output_format": "jpeg",
          "output_compression": 0, "response_format": "url", "quality": "hd", "style": "vivid", "user": "u",
          "background": "auto", "moderation": "low", "seed": 5, "steps": 20})");
  EXPECT_EQ(images.count, 3);
  EXPECT_TRUE(images.urls);
  EXPECT_EQ(images.order.config, "k5_lite_t2i_sft_hd");
  EXPECT_EQ(images.order.request.width, 1408);
  EXPECT_EQ(images.order.request.height, 640);
  EXPECT_EQ(images.order.format, "jpg");
  EXPECT_EQ(images.order.quality, 1);
  EXPECT_EQ(images.order.request.seed, 5u);
  EXPECT_EQ(images.order.request.steps, 20);
  const ImagesOrder plain = parse_images_order(R"({"prompt": "a fox", "size": "auto"})");
  EXPECT_EQ(plain.count, 1);
  EXPECT_FALSE(plain.urls);
  EXPECT_EQ(plain.order.request.width, 0);  // the model's default
  EXPECT_TRUE(plain.order.random_seed);
  EXPECT_EQ(parse_images_order(R"({"prompt": "a", "quality": 80, "stream": false})").order.quality, 80);
  // null is absent: no clash with the OpenAI field beside it.
  EXPECT_EQ(parse_images_order(R"({"prompt": "a", "quality": null, "output_compression": 50, "width": null,
                                   "size": "64x64"})")
                .order.quality,
            50);

  const ImagesOrder form = parse_images_form(
      {{"prompt", "123"}, {"n", "2"}, {"seed", "9"}, {"expand_prompt", "false"}, {"lora", "a:0.5"}, {"lora", "b"}});
  EXPECT_EQ(form.order.request.prompt, "123");
  EXPECT_EQ(form.count, 2);
  EXPECT_EQ(form.order.request.seed, 9u);
  EXPECT_FALSE(form.order.request.expand_prompt);
  EXPECT_EQ(form.order.request.loras, (std::vector<std::string>{"a:0.5", "b"}));
  EXPECT_EQ(parse_images_form({{"prompt", "a"}, {"quality", "high"}}).order.quality, 95);  // OpenAI's: ignored
  EXPECT_EQ(parse_images_form({{"prompt", "a"}, {"quality", "70"}}).order.quality, 70);    // k5's

  const auto error_of = [](const std::function<void()>& parse) {
    try {
      parse();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("<accepted>");
  };
  for (const auto& [body, expected] : std::vector<std::pair<std::string, std::string>>{
           {R"({"prompt": "a", "n": 0})", "'n'"},
           {R"({"prompt": "a", "n": 2.5})", "'n'"},
           {R"({"prompt": "a", "size": "1024x"})", "WIDTHxHEIGHT"},
           {R"({"prompt": "a", "size": "1024x1024x3"})", "WIDTHxHEIGHT"},
           {R"({"prompt": "a", "size": "-5x7"})", "WIDTHxHEIGHT"},
           {R"({"prompt": "a", "size": "5x-7"})", "WIDTHxHEIGHT"},
           {R"({"prompt": "a", "size": "+512x512"})", "WIDTHxHEIGHT"},
           {R"({"prompt": "a", "size": "512x 512"})", "WIDTHxHEIGHT"},
           {R"({"prompt": "a", "size": "99999999999x512"})", "WIDTHxHEIGHT"},
           {R"({"prompt": "a", "quality": 80, "output_compression": 50})", "not both"},
           {R"({"prompt": "a", "stream": true})", "'stream'"},
           {R"({"prompt": "a", "size": "64x64", "width": 64})", "not both"},
           {R"({"prompt": "a", "output_compression": 101})", "output_compression"},
           {R"({"prompt": "a", "response_format": 1})", "response_format"},
           {R"({"prompt": "a", "model": 7})", "'model'"},
           {R"({"prompt": "a", "model": "../x"})", "not a path"},
       })
    EXPECT_NE(error_of([&] { parse_images_order(body); }).find(expected), std::string::npos) << body;
  EXPECT_NE(error_of([] {
              parse_images_form({{"prompt", "a"}, {"n", "two"}});
            }).find("'n' must be a number"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              parse_images_form({{"prompt", "a"}, {"magcache", "yes"}});
            }).find("true or false"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_images_form({{"prompt", "a"}, {"prompt", "b"}}); }).find("twice"), std::string::npos);
}

}  // namespace
}  // namespace k5
