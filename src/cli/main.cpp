// `k5`: git-style subcommands; see `k5 --help`.
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <vector>

#include "cli/command.h"
#include "core/error.h"

namespace k5::cli {

namespace {

struct Registry {
  std::vector<Command> commands;
  std::map<std::string, std::string> parents;
};

Registry& registry() {
  static Registry instance;
  return instance;
}

}  // namespace

bool register_command(Command command) {
  registry().commands.push_back(std::move(command));
  return true;
}

void register_parent(const std::string& path, const std::string& summary) { registry().parents[path] = summary; }

void add_context_options(CLI::App& app, ContextOptions& options, bool with_precision) {
  app.add_option("-t,--threads", options.threads, "CPU threads (default: one per core)")->check(CLI::NonNegativeNumber);
  app.add_flag_callback("-v,--verbose", [&options] { options.log_level = LogLevel::debug; }, "debug logging");
  app.add_flag_callback("-q,--quiet", [&options] { options.log_level = LogLevel::quiet; }, "only errors");
  if (with_precision) {
    app.add_option_function<std::string>(
           "--precision", [&options](const std::string& name) { options.precision = parse_precision(name); },
           "fp32 (parity) or bf16 (fast; default)")
        ->check(CLI::IsMember({"fp32", "bf16"}));
    // The default is resolved after parsing, so that only compute commands ask the driver for a GPU.
    auto device = std::make_shared<std::string>("auto");
    app.add_option("--device", *device, "auto (default: cuda when a GPU answers, else cpu), cpu or cuda")
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
    app.parse_complete_callback([&options, device] { options.device = parse_device(*device); });
  }
}

void add_lora_option(CLI::App& app, std::vector<std::string>& specs) {
  app.add_option("--lora", specs,
                 "LoRA adapter of the DiT: its .safetensors file or folder (PEFT config beside it), optionally "
                 "followed by :MULTIPLIER (default 1); repeat for several")
      ->allow_extra_args(false);
}

void add_int8_weights_option(CLI::App& app, std::vector<std::string>& parts) {
  app.add_option("--weights-int8", parts,
                 "int8 weight-only layers, quantised at load (about half the memory, ~1% error per layer): dit (its "
                 "blocks' attention and feed-forward), text-encoder (Qwen2.5-VL), all or none (default)")
      ->delimiter(',')
      ->check(CLI::IsMember({"dit", "text-encoder", "all", "none"}))
      ->allow_extra_args(false);
}

void add_dit_int8_flag(CLI::App& app, bool& int8) {
  app.add_flag("--weights-int8", int8,
               "int8 weight-only attention and feed-forward layers in the blocks (per-output-channel scales, "
               "quantised at load)");
}

int main(int argc, char** argv) {
  CLI::App app{"k5: native runtime for the Kandinsky 5.0 image and video models", "k5"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "k5 " K5_VERSION);

  auto& entries = registry();
  std::sort(entries.commands.begin(), entries.commands.end(),
            [](const Command& a, const Command& b) { return a.path < b.path; });
  std::map<std::string, CLI::App*> apps{{"", &app}};
  std::function<int()> action;
  for (const auto& command : entries.commands) {
    // Create the parents of "a b c" on the way down.
    std::string parent_path;
    CLI::App* parent = &app;
    size_t start = 0;
    while (true) {
      const size_t space = command.path.find(' ', start);
      const std::string name = command.path.substr(start, space - start);
      const std::string path = parent_path.empty() ? name : parent_path + " " + name;
      if (space == std::string::npos) {
        CLI::App* sub = parent->add_subcommand(name, command.summary);
        auto run = command.setup(*sub);
        sub->callback([&action, run] { action = run; });
        break;
      }
      auto found = apps.find(path);
      if (found == apps.end()) {
        const auto summary = entries.parents.count(path) ? entries.parents[path] : std::string();
        CLI::App* sub = parent->add_subcommand(name, summary);
        sub->require_subcommand(1);
        found = apps.emplace(path, sub).first;
      }
      parent = found->second;
      parent_path = path;
      start = space + 1;
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  } catch (const Error& error) {
    std::fprintf(stderr, "k5: error: %s\n", error.what());
    return 2;
  }
  try {
    return action ? action() : 0;
  } catch (const Error& error) {
    std::fprintf(stderr, "k5: error: %s\n", error.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "k5: error: out of memory\n");
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "k5: error: %s\n", error.what());
    return 1;
  }
}

}  // namespace k5::cli

int main(int argc, char** argv) { return k5::cli::main(argc, argv); }
