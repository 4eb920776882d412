// `k5 info PATH`: what a checkpoint file, index or model folder holds, and what it needs to run.
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "io/model_inspect.h"

namespace {

struct InfoOptions {
  std::string path;
  bool json = false;
};

K5_COMMAND("info", "describe a checkpoint or model folder: components, parameters, dtypes, memory to run",
           [](CLI::App& app) {
             auto options = std::make_shared<InfoOptions>();
             app.add_option("path", options->path,
                            "a .safetensors file, a *.safetensors.index.json, or a model/component folder")
                 ->required();
             app.add_flag("--json", options->json, "machine-readable output");
             return [options]() -> int {
               // Unknown components are reported, not failures; unreadable or corrupt files throw.
               const k5::ModelReport report = k5::inspect_model(options->path);
               const std::string text = options->json ? k5::report_json(report).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"
                                                      : k5::format_report(report);
               std::fputs(text.c_str(), stdout);
               return 0;
             };
           });

}  // namespace
