// `k5 forward dit`: one CrossDiT forward on tensors from a safetensors file (contracts/forward.md).
//   IN  x [T, H, W, Cin], text_embed [L, in_text_dim], pooled_text_embed [1, in_text_dim2], time [1],
//       attention_mask [1, L] (optional)
//   OUT velocity [T, H, W, out_visual_dim] F32
#include <memory>

#include "cli/command.h"
#include "io/kandinsky_config.h"
#include "io/safetensors.h"
#include "models/crossdit/crossdit.h"
#include "models/crossdit/dit_inputs.h"

namespace k5::cli {
namespace {

struct DitOptions {
  ContextOptions context;
  std::string config, weights, inputs, output, attention = "auto";
  std::vector<std::string> loras;
  bool weights_int8 = false;
};

int run_forward_dit(const DitOptions& o) {
  Context ctx(o.context);
  const KandinskyConfig config = load_kandinsky_config(o.config);
  const DitInputFile file(o.inputs, {"x", "text_embed", "pooled_text_embed", "time", "attention_mask"});
  const DitInputs inputs = read_dit_inputs(file);
  const CrossDit dit = CrossDit::load(config, o.weights, ctx.precision(), parse_dit_attention(o.attention),
                                      ctx.device(), load_loras(ctx, o.loras, config.dit), o.weights_int8);
  dit.check_inputs(inputs);
  const Tensor velocity = dit.forward(ctx, inputs);
  save_safetensors(o.output, {{"velocity", velocity}});
  return 0;
}

}  // namespace

K5_COMMAND("forward dit", "CrossDiT forward: x, text_embed, pooled_text_embed, time -> velocity",
           [](CLI::App& app) -> std::function<int()> {
             auto o = std::make_shared<DitOptions>();
             add_context_options(app, o->context);
             app.add_option("--config", o->config, "official Kandinsky 5 config (.yaml)")->required();
             app.add_option("--weights", o->weights, "DiT checkpoint (.safetensors, official or diffusers keys)")
                 ->required();
             app.add_option("--inputs", o->inputs, "input .safetensors")->required();
             app.add_option("--output", o->output, "output .safetensors (velocity)")->required();
             app.add_option("--attention", o->attention, "auto | dense | nabla (auto: as the config says)");
             add_lora_option(app, o->loras);
             add_dit_int8_flag(app, o->weights_int8);
             return [o]() { return run_forward_dit(*o); };
           });

}  // namespace k5::cli
