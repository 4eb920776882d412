// `k5 forward qwen`: the Qwen2.5-VL language model on token ids (text only).
//   IN  input_ids [1, L] I32/I64, attention_mask [1, L] (optional; 1 = real token)
//   OUT hidden_states [1, L, D] F32 — transformers' hidden_states[-1] (after the final norm)
#include <chrono>
#include <memory>

#include "cli/command.h"
#include "io/safetensors.h"
#include "models/qwen25vl/qwen_text_model.h"
#include "models/qwen25vl/token_inputs.h"

namespace k5::cli {
namespace {

struct QwenOptions {
  ContextOptions context;
  std::string model_dir, config, inputs, output;
  bool weights_int8 = false;
};

int run_qwen(const QwenOptions& o) {
  Context ctx(o.context);
  const TokenInputs inputs = read_token_inputs(o.inputs);
  const auto start = std::chrono::steady_clock::now();
  const QwenTextModel model = QwenTextModel::load(
      ctx, o.model_dir, o.config, o.weights_int8 ? std::optional<QwenWeights>(QwenWeights::int8) : std::nullopt,
      /*with_lm_head=*/false, ctx.device());
  const auto loaded = std::chrono::steady_clock::now();
  const Tensor hidden = model.forward(ctx, inputs.input_ids, inputs.attention_mask);
  const auto done = std::chrono::steady_clock::now();
  ctx.log().info("qwen: ", inputs.input_ids.size(), " tokens; load ",
                 std::chrono::duration<double>(loaded - start).count(), " s, forward ",
                 std::chrono::duration<double>(done - loaded).count(), " s");
  save_safetensors(o.output, {{"hidden_states", hidden.unsqueeze(0)}});
  return 0;
}

}  // namespace

K5_COMMAND(
    "forward qwen", "Qwen2.5-VL language model: input_ids -> hidden_states (hidden_states[-1])",
    [](CLI::App& app) -> std::function<int()> {
      auto o = std::make_shared<QwenOptions>();
      add_context_options(app, o->context);
      app.add_option("--model-dir", o->model_dir, "checkpoint folder, .safetensors file or index.json")->required();
      app.add_option("--config", o->config, "config.json (default: config.json beside the checkpoint)");
      app.add_option("--inputs", o->inputs, "input .safetensors (input_ids, attention_mask)")->required();
      app.add_option("--output", o->output, "output .safetensors (hidden_states)")->required();
      app.add_flag("--weights-int8", o->weights_int8,
                   "int8 weight-only projections (per-output-channel scales, quantised at load)");
      return [o]() { return run_qwen(*o); };
    });

}  // namespace k5::cli
