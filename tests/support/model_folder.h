// Test model folders: temporary directories, the text encoders rebuilt from a golden that keeps only the
// embedding rows its prompts use (tools/golden/encode_text.py format), and running the k5 binary.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <utility>

namespace k5::test {

// A fresh directory under the system temp folder, removed with its contents on destruction.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// Writes <root>/text_encoder/ (Qwen2.5-VL: config.json, model.safetensors, the real tokenizer.json from
// ../shared) and <root>/text_encoder2/ (CLIP: config.json, model.safetensors, vocab.json, merges.txt) from
// <golden_dir>/<weights_file> (qwen.* / clip.* keys, embed_ids / embed_rows), qwen_config.json, clip_config.json
// and, when present, qwen_preprocessor_config.json and qwen_generation_config.json.
void write_text_encoders(const std::string& golden_dir, const std::string& weights_file,
                         const std::filesystem::path& root);

// A copy of the checkpoint at `source` written to `path`, each tensor under rename(name); an empty name leaves the
// tensor out (other key layouts, missing tensors).
void save_renamed_copy(const std::string& source, const std::string& path,
                       const std::function<std::string(const std::string&)>& rename);

// The demo model folder (`k5 create-demo-model`: tiny random DiTs of all four modes, both VAEs, the text
// encoders), written once per test process into a temporary folder.
const std::string& demo_model();

// Runs `k5 <arguments>` (the K5_BINARY environment variable, else the built one) with stderr captured in
// <dir>/stderr; returns the exit status.
int run_k5(const std::string& arguments, const std::filesystem::path& dir);
std::string read_text(const std::filesystem::path& path);
std::string shell_quoted(const std::string& text);

// The k5 binary run in a fresh temporary folder with `flags` after every command line (the GPU tests add
// --device cuda); the CPU and GPU tests share their CLI checks through it.
struct K5Cli {
  TempDir dir;
  std::string flags;
  explicit K5Cli(const std::string& tag, std::string flags = "-q -t 2") : dir(tag), flags(std::move(flags)) {}
  int run(const std::string& arguments) const { return run_k5(arguments + " " + flags, dir.path); }
  std::string err() const { return read_text(dir.path / "stderr"); }
  std::string path(const std::string& name) const { return (dir.path / name).string(); }
};

}  // namespace k5::test
