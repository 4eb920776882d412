// `k5 create-random-dit`: a random-weight CrossDiT with the official key names and shapes, for smoke tests,
// benchmarks and demos (src/models/crossdit/random_weights.h).
#include <memory>

#include "cli/command.h"
#include "core/thread_pool.h"
#include "io/kandinsky_config.h"
#include "io/safetensors.h"
#include "models/crossdit/random_weights.h"

namespace k5::cli {
namespace {

struct RandomDitOptions {
  std::string config, output, dtype = "bf16";
  uint64_t seed = 0;
  int64_t blocks_visual = -1, blocks_text = -1, model_dim = -1, ff_dim = -1, time_dim = -1;
  int threads = 0;
};

int run_random_dit(const RandomDitOptions& o) {
  KandinskyConfig config = load_kandinsky_config(o.config);
  DitParams& p = config.dit;
  if (o.blocks_visual >= 0) p.num_visual_blocks = o.blocks_visual;
  if (o.blocks_text >= 0) p.num_text_blocks = o.blocks_text;
  if (o.model_dim > 0) p.model_dim = o.model_dim;
  if (o.ff_dim > 0) p.ff_dim = o.ff_dim;
  if (o.time_dim > 0) p.time_dim = o.time_dim;
  K5_CHECK(o.dtype == "bf16" || o.dtype == "f32", "--dtype must be bf16 or f32, found '", o.dtype, "'");
  const DType dtype = o.dtype == "bf16" ? DType::BF16 : DType::F32;
  ThreadPool pool(o.threads);
  const auto tensors = random_crossdit_weights(p, dtype, o.seed, pool);
  save_safetensors(o.output, tensors, {{"format", "pt"}, {"k5", "random CrossDiT"}});
  return 0;
}

}  // namespace

K5_COMMAND("create-random-dit", "write a random-weight CrossDiT (official key names) for tests and benchmarks",
           [](CLI::App& app) -> std::function<int()> {
             auto o = std::make_shared<RandomDitOptions>();
             app.add_option("--config", o->config, "official Kandinsky 5 config (.yaml)")->required();
             app.add_option("--output", o->output, "output .safetensors")->required();
             app.add_option("--seed", o->seed, "random seed");
             app.add_option("--dtype", o->dtype, "bf16 | f32");
             app.add_option("--blocks-visual", o->blocks_visual, "override num_visual_blocks");
             app.add_option("--blocks-text", o->blocks_text, "override num_text_blocks");
             app.add_option("--model-dim", o->model_dim, "override model_dim");
             app.add_option("--ff-dim", o->ff_dim, "override ff_dim");
             app.add_option("--time-dim", o->time_dim, "override time_dim");
             app.add_option("--threads", o->threads, "threads (0 = one per core)");
             return [o]() { return run_random_dit(*o); };
           });

}  // namespace k5::cli
