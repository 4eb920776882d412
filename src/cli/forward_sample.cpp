// `k5 forward sample`: the official sampling loop on given noise (contracts/forward.md).
//   IN  noise [T, H, W, C]; text_embed, pooled_text_embed, attention_mask (optional); null_text_embed,
//       null_pooled_text_embed, null_attention_mask (optional; needed when guidance != 1);
//       first_frame [1, H, W, C] (optional, I2V); edit_latent [1, H, W, C] (optional, I2I)
//   OUT latents [T, H, W, C] F32
#include <memory>

#include "cli/command.h"
#include "io/kandinsky_config.h"
#include "io/safetensors.h"
#include "models/crossdit/crossdit.h"
#include "models/crossdit/dit_inputs.h"
#include "pipelines/sampler.h"

namespace k5::cli {
namespace {

struct SampleOptions {
  ContextOptions context;
  std::string config, weights, inputs, output, attention = "auto";
  std::vector<std::string> loras;
  bool weights_int8 = false;
  int steps = 0;
  double guidance = 1.0, scheduler_scale = 1.0;
};

TextCondition read_condition(const DitInputFile& file, const std::string& prefix) {
  TextCondition c;
  if (!file.has(prefix + "text_embed") && !file.has(prefix + "pooled_text_embed")) return c;
  c.text_embed = file.float_tensor(prefix + "text_embed");
  c.pooled_text_embed = file.float_tensor(prefix + "pooled_text_embed");
  if (c.text_embed.dim() == 2) c.attention_mask = file.mask(prefix + "attention_mask", c.text_embed.size(0));
  return c;
}

int run_forward_sample(const SampleOptions& o) {
  Context ctx(o.context);
  const KandinskyConfig config = load_kandinsky_config(o.config);
  const DitInputFile file(o.inputs, {"noise", "text_embed", "pooled_text_embed", "attention_mask", "null_text_embed",
                                     "null_pooled_text_embed", "null_attention_mask", "first_frame", "edit_latent"});
  SampleRequest request;
  request.noise = file.float_tensor("noise");
  request.positive = read_condition(file, "");
  K5_CHECK(request.positive.text_embed.defined(), o.inputs, ": missing input tensor 'text_embed'");
  request.negative = read_condition(file, "null_");
  request.first_frame = file.optional_float("first_frame");
  request.edit_latent = file.optional_float("edit_latent");
  request.steps = o.steps;
  request.guidance = o.guidance;
  request.scheduler_scale = o.scheduler_scale;
  const bool cfg = std::abs(o.guidance - 1.0) > 1e-6;
  K5_CHECK(!cfg || request.negative.text_embed.defined(), o.inputs,
           ": missing input tensor 'null_text_embed' (needed with --guidance ", o.guidance, ")");
  const CrossDit dit = CrossDit::load(config, o.weights, ctx.precision(), parse_dit_attention(o.attention),
                                      ctx.device(), load_loras(ctx, o.loras, config.dit), o.weights_int8);
  const Tensor latents = sample(ctx, dit, request);
  save_safetensors(o.output, {{"latents", latents}});
  return 0;
}

}  // namespace

K5_COMMAND("forward sample", "the official sampling loop: noise + text embeddings -> latents",
           [](CLI::App& app) -> std::function<int()> {
             auto o = std::make_shared<SampleOptions>();
             add_context_options(app, o->context);
             app.add_option("--config", o->config, "official Kandinsky 5 config (.yaml)")->required();
             app.add_option("--weights", o->weights, "DiT checkpoint (.safetensors)")->required();
             app.add_option("--inputs", o->inputs, "input .safetensors")->required();
             app.add_option("--output", o->output, "output .safetensors (latents)")->required();
             app.add_option("--steps", o->steps, "number of Euler steps")->required()->check(CLI::PositiveNumber);
             app.add_option("--guidance", o->guidance, "classifier-free guidance weight")->required();
             app.add_option("--scheduler-scale", o->scheduler_scale, "time-grid shift s")->required()
                 ->check(CLI::PositiveNumber);
             app.add_option("--attention", o->attention, "auto | dense | nabla");
             add_lora_option(app, o->loras);
             add_dit_int8_flag(app, o->weights_int8);
             return [o]() { return run_forward_sample(*o); };
           });

}  // namespace k5::cli
