// `k5 create-random-dit`: a random-weight CrossDiT with the official key names and shapes, for smoke tests,
// benchmarks and demos (weights ~ N(0, 1/fan_in), norm weights ~ 1, biases small).
#include <memory>
#include <random>

#include "cli/command.h"
#include "core/thread_pool.h"
#include "io/kandinsky_config.h"
#include "io/safetensors.h"
#include "models/crossdit/crossdit_weights.h"

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
  std::vector<std::pair<std::string, Tensor>> tensors;
  uint64_t index = 0;
  for (const auto& [name, shape] : crossdit_parameter_shapes(p)) {
    Tensor t = Tensor::empty(dtype, shape);
    const int64_t n = t.numel();
    const bool matrix = shape.size() == 2;
    const bool norm = name.find("norm.weight") != std::string::npos;
    const float std_dev = matrix ? 1.0f / std::sqrt(float(shape[1])) : (norm ? 0.1f : 0.02f);
    const float mean = norm ? 1.0f : 0.0f;
    const uint64_t seed = o.seed * 1000003ULL + index++;
    // Chunks of 65536 values, each from its own seeded generator: deterministic for any thread count.
    pool.parallel_for(0, (n + 65535) / 65536, 1, [&](int64_t begin, int64_t end) {
      for (int64_t chunk = begin; chunk < end; ++chunk) {
        std::mt19937_64 rng(seed * 7919ULL + uint64_t(chunk));
        std::normal_distribution<float> normal(mean, std_dev);
        const int64_t stop = std::min(n, (chunk + 1) * 65536);
        for (int64_t i = chunk * 65536; i < stop; ++i) {
          const float v = normal(rng);
          if (dtype == DType::BF16)
            t.data<uint16_t>()[i] = f32_to_bf16(v);
          else
            t.data<float>()[i] = v;
        }
      }
    });
    tensors.push_back({name, std::move(t)});
  }
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
