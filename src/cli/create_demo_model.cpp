// `k5 create-demo-model`: the tiny random-weight model folder in the official layout (src/pipelines/demo_model.h)
// that the build makes in build/demo/, for smoke tests of every mode before trained weights exist.
#include <memory>

#include "cli/command.h"
#include "pipelines/demo_model.h"

namespace k5::cli {
namespace {

struct DemoModelOptions {
  std::string output;
  uint64_t seed = 5;
  bool full_size = false;
};

}  // namespace

K5_COMMAND(
    "create-demo-model",
    "write a tiny random-weight Kandinsky 5 model folder (official layout, all four modes) for smoke tests",
    [](CLI::App& app) -> std::function<int()> {
      auto o = std::make_shared<DemoModelOptions>();
      app.add_option("--output", o->output, "output folder (created; existing demo files are replaced)")->required();
      app.add_option("--seed", o->seed, "random seed (same seed, same bytes)");
      app.add_flag("--full-size", o->full_size,
                   "instead: Video Lite T2V 5 s at the released sizes (~21 GB), for timing and memory runs");
      return [o]() {
        write_demo_model(o->output, o->seed, o->full_size);
        return 0;
      };
    });

}  // namespace k5::cli
