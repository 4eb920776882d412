#include "support/model_folder.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "io/safetensors.h"
#include "pipelines/demo_model.h"
#include "support/compare.h"

namespace k5::test {

namespace fs = std::filesystem;

TempDir::TempDir(const std::string& tag) {
  static std::atomic<int> counter{0};
  path = fs::temp_directory_path() / ("k5_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  fs::remove_all(path);
  fs::create_directories(path);
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path, ignored);
}

namespace {

// Every "<prefix>.<key>" tensor under <key>, plus the full embedding table [vocab, D], zero except the stored rows.
std::vector<std::pair<std::string, Tensor>> encoder_weights(const SafetensorsFile& file, const std::string& prefix,
                                                            const std::string& embedding_key, int64_t vocab) {
  std::vector<std::pair<std::string, Tensor>> weights;
  for (const auto& info : file.tensors()) {
    if (info.name.rfind(prefix + ".", 0) != 0) continue;
    const std::string key = info.name.substr(prefix.size() + 1);
    if (key != "embed_ids" && key != "embed_rows") weights.emplace_back(key, file.tensor(info.name));
  }
  const Tensor ids = file.tensor(prefix + ".embed_ids").to(DType::I32);
  const Tensor rows = file.tensor(prefix + ".embed_rows").to(DType::F32);
  const int64_t dim = rows.size(1);
  Tensor table = Tensor::zeros(DType::F32, {vocab, dim});
  for (int64_t i = 0; i < ids.numel(); ++i)
    std::copy_n(rows.data<float>() + i * dim, dim, table.data<float>() + int64_t(ids.data<int32_t>()[i]) * dim);
  weights.emplace_back(embedding_key, table);
  return weights;
}

}  // namespace

void write_text_encoders(const std::string& golden_dir, const std::string& weights_file, const fs::path& root) {
  const auto file = SafetensorsFile::open(golden_dir + "/" + weights_file);
  const fs::path qwen = root / "text_encoder", clip = root / "text_encoder2";
  fs::create_directories(qwen);
  fs::create_directories(clip);
  fs::copy_file(golden_dir + "/qwen_config.json", qwen / "config.json", fs::copy_options::overwrite_existing);
  fs::copy_file(shared_path("tokenizers/qwen2.5/tokenizer.json"), qwen / "tokenizer.json",
                fs::copy_options::overwrite_existing);
  for (const char* name : {"preprocessor_config.json", "generation_config.json"})
    if (fs::exists(golden_dir + "/qwen_" + name))
      fs::copy_file(golden_dir + "/qwen_" + name, qwen / name, fs::copy_options::overwrite_existing);
  save_safetensors((qwen / "model.safetensors").string(),
                   encoder_weights(*file, "qwen", "model.embed_tokens.weight", 151936));
  fs::copy_file(golden_dir + "/clip_config.json", clip / "config.json", fs::copy_options::overwrite_existing);
  for (const char* name : {"vocab.json", "merges.txt"})
    fs::copy_file(source_path(std::string("tests/golden/tokenizers/clip/") + name), clip / name,
                  fs::copy_options::overwrite_existing);
  save_safetensors((clip / "model.safetensors").string(),
                   encoder_weights(*file, "clip", "text_model.embeddings.token_embedding.weight", 49408));
}

void save_renamed_copy(const std::string& source, const std::string& path,
                       const std::function<std::string(const std::string&)>& rename) {
  const Checkpoint checkpoint = Checkpoint::open(source);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const std::string& name : checkpoint.names()) {
    const std::string renamed = rename(name);
    if (!renamed.empty()) tensors.emplace_back(renamed, checkpoint.tensor(name));
  }
  save_safetensors(path, tensors);
}

int run_k5(const std::string& arguments, const fs::path& dir) {
  // K5_BINARY in the environment wins (the GPU machine runs a bundled copy, not the build tree's).
  const char* configured = std::getenv("K5_BINARY");
  const std::string binary = configured ? configured : K5_BINARY;
  const std::string command = binary + " " + arguments + " 2>" + (dir / "stderr").string();
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string shell_quoted(const std::string& text) {
  std::string out = "'";
  for (const char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

const std::string& demo_model() {
  static const TempDir dir("demo-model");
  static const std::string path = [] {
    write_demo_model((dir.path / "demo").string());
    return (dir.path / "demo").string();
  }();
  return path;
}

}  // namespace k5::test
