#include "pipelines/model_files.h"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "core/error.h"

namespace k5 {
namespace {

namespace fs = std::filesystem;

bool is_yaml(const fs::path& path) { return path.extension() == ".yaml" || path.extension() == ".yml"; }

std::vector<fs::path> configs_in(const fs::path& folder) {
  std::vector<fs::path> found;
  for (const fs::path& dir : {folder / "configs", folder}) {
    std::error_code error;
    if (!fs::is_directory(dir, error)) continue;
    for (const auto& entry : fs::directory_iterator(dir, error))
      if (entry.is_regular_file() && is_yaml(entry.path())) found.push_back(entry.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::string names_of(const std::vector<fs::path>& configs) {
  std::string names;
  for (const fs::path& c : configs) names += (names.empty() ? "" : ", ") + c.stem().string();
  return names;
}

// A path from the config ("./weights/vae/"), resolved against the candidate roots in order.
struct Resolver {
  std::vector<fs::path> roots;

  std::optional<std::string> find(const std::string& configured) const {
    const fs::path path(configured);
    if (path.is_absolute()) return fs::exists(path) ? std::optional<std::string>(path.string()) : std::nullopt;
    for (const fs::path& root : roots) {
      const fs::path candidate = (root / path).lexically_normal();
      if (fs::exists(candidate)) return candidate.string();
    }
    return std::nullopt;
  }
  std::string looked_in(const std::string& configured) const {
    if (fs::path(configured).is_absolute()) return configured;
    std::string places;
    for (const fs::path& root : roots)
      places += (places.empty() ? "" : " or ") + (root / configured).lexically_normal().string();
    return places;
  }
};

struct ConfigChoice {
  fs::path path;
  std::vector<fs::path> roots;
};

ConfigChoice choose_config(const std::string& model, const std::string& requested) {
  const fs::path model_path(model);
  std::error_code error;
  K5_CHECK(fs::exists(model_path, error), "model: no such file or folder: ", model);
  const fs::path cwd = fs::current_path();
  if (!fs::is_directory(model_path)) {
    K5_CHECK(is_yaml(model_path), "model: ", model,
             " is neither a folder nor an official config (.yaml); pass the model folder or its config");
    K5_CHECK(requested.empty(), "model: --config given together with a config file as --model (", model, ")");
    const fs::path folder = fs::absolute(model_path).parent_path();
    return {model_path, {folder.parent_path(), folder, cwd}};
  }
  K5_CHECK(!fs::exists(model_path / "model_index.json"), "model: ", model,
           " is a diffusers-format folder (model_index.json); k5 generate reads the official layout "
           "(configs/*.yaml with weights/: see README)");
  const std::vector<fs::path> roots{model_path, cwd};
  const std::vector<fs::path> configs = configs_in(model_path);
  if (!requested.empty()) {
    if (fs::is_regular_file(requested)) return {fs::path(requested), roots};
    for (const fs::path& c : configs)
      if (c.stem() == fs::path(requested).stem()) return {c, roots};
    fail("model: no config '", requested, "' in ", model, (configs.empty() ? "" : "; available: "),
            names_of(configs));
  }
  K5_CHECK(!configs.empty(), "model: no official config (.yaml) in ", model, " or ", (model_path / "configs").string(),
           "; pass one with --config");
  if (configs.size() == 1) return {configs.front(), roots};
  // Several configs (the official repository has them all): keep those whose DiT checkpoint is present.
  std::vector<fs::path> present;
  const Resolver resolver{roots};
  for (const fs::path& c : configs) {
    try {
      if (resolver.find(load_kandinsky_config(c.string()).checkpoint_path)) present.push_back(c);
    } catch (const Error&) {
      // An unreadable config is not a candidate; naming it explicitly reports its error.
    }
  }
  K5_CHECK(present.size() == 1, "model: ", model, " has several configs", (present.empty() ? "" : " with weights"),
           "; pick one with --config NAME: ", names_of(present.empty() ? configs : present));
  return {present.front(), roots};
}

}  // namespace

ModelFiles find_model_files(const std::string& model, const ModelOverrides& overrides) {
  const ConfigChoice choice = choose_config(model, overrides.config);
  ModelFiles files;
  files.config = load_kandinsky_config(choice.path.string());
  const Resolver resolver{choice.roots};
  std::string missing;
  auto locate = [&](const std::string& override_path, const std::string& configured, const char* what) {
    if (!override_path.empty()) {
      if (fs::exists(override_path)) return override_path;
      missing += std::string(missing.empty() ? "" : "; ") + what + " (" + override_path + ")";
      return std::string();
    }
    if (auto found = resolver.find(configured)) return *found;
    missing += std::string(missing.empty() ? "" : "; ") + what + " (looked for " + resolver.looked_in(configured) + ")";
    return std::string();
  };
  const KandinskyConfig& c = files.config;
  files.dit = locate(overrides.dit, c.checkpoint_path, "DiT weights");
  files.vae = locate(overrides.vae, c.vae.checkpoint_path, c.is_video() ? "HunyuanVideo VAE" : "FLUX VAE");
  files.text_encoders.qwen_dir =
      locate(overrides.text_encoder, c.text_embedder.qwen_checkpoint_path, "Qwen2.5-VL text encoder");
  files.text_encoders.clip_dir =
      locate(overrides.text_encoder2, c.text_embedder.clip_checkpoint_path, "CLIP text encoder");
  K5_CHECK(missing.empty(), "model ", choice.path.string(), " is missing: ", missing);
  // The official build_vae reads the VAE from <path>/vae (subfolder="vae") when that exists.
  if (fs::is_directory(fs::path(files.vae) / "vae") && !fs::exists(fs::path(files.vae) / "config.json"))
    files.vae = (fs::path(files.vae) / "vae").string();
  return files;
}

}  // namespace k5
