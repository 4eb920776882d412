// Subcommand registry: each file in src/cli/ registers its command with K5_COMMAND, so adding a command
// touches no other file. Names with a space ("forward dit") nest under their parent.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/context.h"

namespace k5::cli {

struct Command {
  std::string path;     // "info", "forward dit"
  std::string summary;  // one line for --help
  // Adds options to the subcommand and returns the action to run after parsing (exit code).
  std::function<std::function<int()>(CLI::App&)> setup;
};

bool register_command(Command command);
void register_parent(const std::string& path, const std::string& summary);

// --threads, --verbose / --quiet, --precision, --device: the options every compute command shares.
void add_context_options(CLI::App& app, ContextOptions& options, bool with_precision = true);

// --lora FILE|FOLDER[:MULTIPLIER], repeatable (src/models/crossdit/lora.h).
void add_lora_option(CLI::App& app, std::vector<std::string>& specs);

// --weights-int8 dit|text-encoder|all|none, comma-separated or repeated (pipelines/generation.h Int8Weights).
void add_int8_weights_option(CLI::App& app, std::vector<std::string>& parts);
// --weights-int8 as a flag, for the commands that run the DiT alone.
void add_dit_int8_flag(CLI::App& app, bool& int8);

// "on" / "off" -> true / false; "auto" -> nullopt (the program decides). CLI11 checks the spelling.
inline std::optional<bool> parse_auto_on_off(const std::string& value) {
  if (value == "auto") return std::nullopt;
  return value == "on";
}

}  // namespace k5::cli

#define K5_CLI_CONCAT_INNER(a, b) a##b
#define K5_CLI_CONCAT(a, b) K5_CLI_CONCAT_INNER(a, b)
#define K5_COMMAND(...) \
  static const bool K5_CLI_CONCAT(k5_command_registered_, __COUNTER__) = ::k5::cli::register_command({__VA_ARGS__})
