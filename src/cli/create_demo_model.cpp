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
};

}  // namespace

K5_COMMAND(
    "create-demo-model",
    "write a tiny random-weight Kandinsky 5 model folder (official layout, all four modes) for smoke tests",
    [](CLI::App& app) -> std::function<int()> {
      auto o = std::make_shared<DemoModelOptions>();
      app.add_option("--output", o->output, "output folder (created; existing demo files are replaced)")->required();
      app.add_option("--seed", o->seed, "random seed (same seed, same bytes)");
      return [o]() {
        write_demo_model(o->output, o->seed);
        return 0;
      };
    });

}  // namespace k5::cli
