// `k5 encode-text`: the text-conditioning step of the pipeline, written as the inputs `k5 forward sample`
// takes (see src/pipelines/text_conditioning.h for what the official code does and what is reproduced).
//   OUT text_embed [L, D] F32, pooled_text_embed [1, D2] F32, attention_mask [1, L] U8 (1 = real token),
//       null_text_embed, null_pooled_text_embed, null_attention_mask (the negative prompt); L = max_length.
#include <chrono>
#include <memory>
#include <optional>

#include "cli/command.h"
#include "core/error.h"
#include "io/image_file.h"
#include "io/safetensors.h"
#include "pipelines/text_conditioning.h"

namespace k5::cli {
namespace {

struct EncodeTextOptions {
  ContextOptions context;
  std::string model_dir, prompt, content = "video", output, image;
  std::optional<std::string> negative;
  int max_length = 0;
  bool weights_int8 = false;
};

int run_encode_text(const EncodeTextOptions& o) {
  const PromptContent content = parse_prompt_content(o.content);
  K5_CHECK((content == PromptContent::image_edit) == !o.image.empty(),
           "encode-text: --image goes with --content image_edit (the source image, as the pipeline has resized it)");
  std::optional<Image> image;
  if (!o.image.empty()) image = read_image(o.image);
  K5_CHECK(!o.prompt.empty(), "encode-text: --prompt is empty");
  Context ctx(o.context);
  const TextEncoderPaths paths = TextEncoderPaths::find(o.model_dir);
  const TextEncoders encoders =
      TextEncoders::load(ctx, paths, o.weights_int8 ? std::optional<QwenWeights>(QwenWeights::int8) : std::nullopt,
                         image.has_value(), /*with_lm_head=*/false, ctx.device());
  const std::string& negative = o.negative ? *o.negative : default_negative_prompt(content);
  const auto start = std::chrono::steady_clock::now();
  const TextConditioning conditioning =
      encode_text_conditioning(ctx, encoders, o.prompt, negative, content, o.max_length, image ? &*image : nullptr);
  ctx.log().info("encode-text: ", prompt_content_name(content), ", ", conditioning.prompt.text_embed.size(0),
                 " text tokens per prompt, both prompts in ",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), " s");
  save_safetensors(o.output, sample_inputs(conditioning),
                   {{"content", prompt_content_name(content)}, {"prompt", o.prompt}, {"negative_prompt", negative}});
  return 0;
}

}  // namespace

K5_COMMAND("encode-text",
           "Qwen2.5-VL + CLIP text conditioning of a prompt and its negative, as `k5 forward sample` inputs",
           [](CLI::App& app) -> std::function<int()> {
             auto o = std::make_shared<EncodeTextOptions>();
             add_context_options(app, o->context);
             app.add_option("--model-dir", o->model_dir,
                            "model folder with text_encoder/ (Qwen2.5-VL) and text_encoder2/ (CLIP), "
                            "or with them under weights/")
                 ->required();
             app.add_option("-p,--prompt", o->prompt, "the prompt")->required();
             app.add_option("-n,--negative", o->negative,
                            "negative prompt (default: the official one for video, \"\" for images)");
             app.add_option("--content", o->content, "prompt template: video, image, image2video or image_edit")
                 ->check(CLI::IsMember({"video", "image", "image2video", "image_edit"}));
             app.add_option("--image", o->image,
                            "image_edit: the source image (its Qwen2.5-VL vision tokens follow the prompt)");
             app.add_option("--max-length", o->max_length,
                            "text tokens after the template prefix (default 256 video, 512 image)")
                 ->check(CLI::PositiveNumber);
             app.add_option("-o,--output", o->output, "output .safetensors")->required();
             app.add_flag("--weights-int8", o->weights_int8,
                          "int8 weight-only Qwen projections (per-output-channel scales, quantised at load)");
             return [o]() { return run_encode_text(*o); };
           });

}  // namespace k5::cli
