// `k5 expand-prompt`: the official prompt expansion alone (src/pipelines/prompt_expansion.h); prints the
// expanded prompt on stdout.
#include <cstdio>
#include <memory>
#include <optional>

#include "cli/command.h"
#include "core/error.h"
#include "io/image_file.h"
#include "pipelines/prompt_expansion.h"

namespace k5::cli {
namespace {

struct ExpandOptions {
  ContextOptions context;
  std::string model_dir, mode = "t2v", image, prompt, rng = "cuda";
  uint64_t seed = 0;
  bool weights_int8 = false;
};

int run_expand(const ExpandOptions& o) {
  const ExpansionMode mode = parse_expansion_mode(o.mode);
  K5_CHECK(!o.prompt.empty(), "expand-prompt: the prompt is empty");
  K5_CHECK(expansion_takes_image(mode) == !o.image.empty(), "expand-prompt: --mode ", o.mode,
           expansion_takes_image(mode) ? " needs --image" : " takes no --image");
  std::optional<Image> image;
  if (!o.image.empty()) image = read_image(o.image);
  Context ctx(o.context);
  const TextEncoderPaths paths = TextEncoderPaths::find(o.model_dir);
  const GenerationConfig config = expansion_generation_config(paths);
  const TextEncoders encoders =
      TextEncoders::load(ctx, paths, o.weights_int8 ? std::optional<QwenWeights>(QwenWeights::int8) : std::nullopt,
                         image.has_value(), /*with_lm_head=*/true, ctx.device());
  const std::string expanded =
      expand_prompt(ctx, encoders, config, mode, o.prompt, image ? &*image : nullptr,
                    parse_rng_device(o.rng), o.seed);
  std::printf("%s\n", expanded.c_str());
  return 0;
}

}  // namespace

K5_COMMAND("expand-prompt", "the official Qwen2.5-VL prompt expansion of a prompt (printed on stdout)",
           [](CLI::App& app) -> std::function<int()> {
             auto o = std::make_shared<ExpandOptions>();
             add_context_options(app, o->context);
             app.add_option("--model-dir", o->model_dir,
                            "model folder with text_encoder/ (Qwen2.5-VL with generation_config.json), or with it "
                            "under weights/")
                 ->required();
             app.add_option("--mode", o->mode, "t2v, t2i, i2v or i2i (the official instruction of that pipeline)")
                 ->check(CLI::IsMember({"t2v", "t2i", "i2v", "i2i"}));
             app.add_option("--image", o->image, "the input image (i2v, i2i)");
             app.add_option("-s,--seed", o->seed, "seed (used only when the generation config samples)");
             app.add_option("--rng", o->rng,
                            "sampling generator: cuda (as the official GPU run; default) or cpu (as torch on the CPU)")
                 ->check(CLI::IsMember({"cpu", "cuda"}));
             app.add_option("prompt", o->prompt, "the prompt")->required();
             app.add_flag(
                 "--weights-int8", o->weights_int8,
                 "int8 weight-only Qwen projections and lm_head (quantised at load; about 2x faster decoding)");
             return [o]() { return run_expand(*o); };
           });

}  // namespace k5::cli
