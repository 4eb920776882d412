// `k5 forward clip`: the CLIP text model on token ids.
//   IN  input_ids [1, L <= 77] I32/I64, attention_mask [1, L] (optional; as CLIPTokenizer returns it)
//   OUT pooler_output [1, D], last_hidden_state [1, L, D] F32
#include <memory>

#include "cli/command.h"
#include "io/safetensors.h"
#include "models/clip/clip_text_model.h"
#include "models/qwen25vl/token_inputs.h"

namespace k5::cli {
namespace {

struct ClipOptions {
  ContextOptions context;
  std::string model_dir, config, inputs, output;
};

int run_clip(const ClipOptions& o) {
  Context ctx(o.context);
  const TokenInputs inputs = read_token_inputs(o.inputs);
  const ClipTextModel model = ClipTextModel::load(ctx, o.model_dir, o.config, ctx.device());
  const ClipTextOutput out = model.forward(ctx, inputs.input_ids, inputs.attention_mask);
  save_safetensors(o.output, {{"pooler_output", out.pooler_output.unsqueeze(0)},
                              {"last_hidden_state", out.last_hidden_state.unsqueeze(0)}});
  return 0;
}

}  // namespace

K5_COMMAND("forward clip", "CLIP text model: input_ids -> pooler_output, last_hidden_state",
           [](CLI::App& app) -> std::function<int()> {
             auto o = std::make_shared<ClipOptions>();
             add_context_options(app, o->context);
             app.add_option("--model-dir", o->model_dir, "checkpoint folder or .safetensors file")->required();
             app.add_option("--config", o->config, "config.json (default: config.json beside the checkpoint)");
             app.add_option("--inputs", o->inputs, "input .safetensors (input_ids, attention_mask)")->required();
             app.add_option("--output", o->output, "output .safetensors (pooler_output, last_hidden_state)")
                 ->required();
             return [o]() { return run_clip(*o); };
           });

}  // namespace k5::cli
