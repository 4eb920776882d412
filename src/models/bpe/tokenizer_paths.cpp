#include "models/bpe/tokenizer_paths.h"

#include <filesystem>
#include <vector>

#include "core/error.h"

namespace k5 {

namespace {

namespace fs = std::filesystem;

bool has_tokenizer(const fs::path& dir, bool prefer_vocab_files) {
  const bool json = fs::is_regular_file(dir / "tokenizer.json");
  const bool vocab_files = fs::is_regular_file(dir / "vocab.json") && fs::is_regular_file(dir / "merges.txt");
  return prefer_vocab_files ? vocab_files || json : json || vocab_files;
}

std::string find_tokenizer(const std::string& model_dir, const char* component, bool prefer_vocab_files,
                           const char* what) {
  K5_CHECK(fs::exists(model_dir), what, " tokenizer: ", model_dir, " does not exist");
  if (fs::is_regular_file(model_dir)) return model_dir;
  const fs::path root(model_dir);
  const std::vector<fs::path> candidates = {root / component, root / "weights" / component, root};
  for (const auto& dir : candidates)
    if (fs::is_directory(dir) && has_tokenizer(dir, prefer_vocab_files)) return dir.string();
  std::string looked;
  for (const auto& dir : candidates)
    looked += (looked.empty() ? "" : ", ") + (dir / "tokenizer.json").string() + " or " +
              (dir / "{vocab.json,merges.txt}").string();
  fail("no ", what, " tokenizer found; looked for ", looked);
}

}  // namespace

std::string find_qwen_tokenizer(const std::string& model_dir) {
  return find_tokenizer(model_dir, "text_encoder", false, "Qwen");
}

std::string find_clip_tokenizer(const std::string& model_dir) {
  return find_tokenizer(model_dir, "text_encoder2", true, "CLIP");
}

}  // namespace k5
