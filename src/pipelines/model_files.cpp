#include "pipelines/model_files.h"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "core/error.h"
#include "io/json_fields.h"

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


// A diffusers-format folder (model_index.json + transformer/, vae/, text_encoder/, tokenizer/,
// text_encoder_2/, tokenizer_2/, scheduler/): the same weights as the official release, run by the official
// pipeline. diffusers keeps no YAML, so the config is rebuilt: the DiT from transformer/config.json, the
// official defaults for the rest (steps 50, or 16 for distilled; guidance 5 video / 3.5 images, 1 for
// distilled and no-CFG; max_length 256 video / 512 images; RoPE scale factors and the size table from the
// resolution, HD when the folder name says so), the scheduler scale from scheduler_config.json's shift.
ModelFiles diffusers_model(const fs::path& folder, const ModelOverrides& overrides) {
  const std::string index_path = (folder / "model_index.json").string();
  const nlohmann::json index_json = read_json_file(index_path);
  const JsonFields index(index_json, index_path);
  const std::string pipeline = index.string("_class_name", "");
  const bool video = pipeline == "Kandinsky5T2VPipeline" || pipeline == "Kandinsky5I2VPipeline";
  const bool edit = pipeline == "Kandinsky5I2IPipeline";
  K5_CHECK(video || edit || pipeline == "Kandinsky5T2IPipeline", index_path, ": pipeline '", pipeline,
           "' is not a Kandinsky 5 pipeline (Kandinsky5T2VPipeline, Kandinsky5I2VPipeline, Kandinsky5T2IPipeline, "
           "Kandinsky5I2IPipeline)");
  K5_CHECK(overrides.config.empty(), "model: --config does not apply to a diffusers-format folder (", folder.string(), ")");
  std::string name = fs::absolute(folder).lexically_normal().string();
  while (!name.empty() && name.back() == '/') name.pop_back();
  name = fs::path(name).filename().string();
  std::string lower = name;
  for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
  auto named = [&](const char* word) { return lower.find(word) != std::string::npos; };

  ModelFiles files;
  KandinskyConfig& c = files.config;
  c.source = (folder / name).string();  // names the model in messages and metadata
  const std::string transformer_config = (folder / "transformer" / "config.json").string();
  K5_CHECK(fs::exists(transformer_config), "model ", folder.string(), " is missing: DiT config (looked for ",
           transformer_config, ")");
  const nlohmann::json transformer_json = read_json_file(transformer_config);
  const JsonFields t(transformer_json, transformer_config);
  DitParams& p = c.dit;
  p.in_visual_dim = t.integer("in_visual_dim");
  p.out_visual_dim = t.integer("out_visual_dim");
  p.in_text_dim = t.integer("in_text_dim", 3584);
  p.in_text_dim2 = t.integer("in_text_dim2", 768);
  p.time_dim = t.integer("time_dim");
  const auto patch = t.integers("patch_size"), axes = t.integers("axes_dims");
  K5_CHECK(patch.size() == 3 && axes.size() == 3, transformer_config, ": patch_size and axes_dims need 3 values");
  std::copy(patch.begin(), patch.end(), p.patch_size.begin());
  std::copy(axes.begin(), axes.end(), p.axes_dims.begin());
  p.model_dim = t.integer("model_dim");
  p.ff_dim = t.integer("ff_dim");
  p.num_text_blocks = t.integer("num_text_blocks");
  p.num_visual_blocks = t.integer("num_visual_blocks");
  // diffusers marks the edit model's extra input channels with visual_cond; the official config says
  // instruct_type: channel.
  p.visual_cond = !edit && t.boolean("visual_cond", false);
  if (edit) p.instruct_type = "channel";
  if (t.string("attention_type", "regular") == "nabla") {
    AttentionConfig& a = c.attention;
    a.type = "nabla";
    a.P = t.number("attention_P");
    a.wT = t.integer("attention_wT");
    a.wW = t.integer("attention_wW");
    a.wH = t.integer("attention_wH");
    a.add_sta = t.boolean("attention_add_sta", true);
    a.method = t.string("attention_method", "topcdf");
  }
  c.resolution = video && !named("hd") ? 512 : 1024;
  c.scale_factor = !video ? std::array<double, 3>{1, 1, 1}
                          : c.resolution == 512 ? std::array<double, 3>{1, 2, 2} : std::array<double, 3>{1, 3.16, 3.16};
  const bool distilled = named("distil");
  c.num_steps = distilled ? 16 : 50;
  c.guidance_weight = distilled || named("nocfg") ? 1.0 : video ? 5.0 : 3.5;
  const fs::path scheduler = folder / "scheduler" / "scheduler_config.json";
  if (fs::exists(scheduler)) {
    const nlohmann::json scheduler_json = read_json_file(scheduler.string());
    const JsonFields s(scheduler_json, scheduler.string());
    if (s.has("shift")) c.scheduler_scale = s.number("shift");
  }
  c.vae.name = video ? "hunyuan" : "flux";
  c.text_embedder.qwen_emb_size = p.in_text_dim;
  c.text_embedder.clip_emb_size = p.in_text_dim2;
  c.text_embedder.qwen_max_length = video ? 256 : 512;

  std::string missing;
  auto locate = [&](const std::string& override_path, const fs::path& standard, const char* what) {
    const std::string path = override_path.empty() ? standard.string() : override_path;
    if (fs::exists(path)) return path;
    missing += std::string(missing.empty() ? "" : "; ") + what + " (looked for " + path + ")";
    return std::string();
  };
  files.dit = locate(overrides.dit, folder / "transformer", "DiT weights");
  files.vae = locate(overrides.vae, folder / "vae", video ? "HunyuanVideo VAE" : "FLUX VAE");
  files.text_encoders.qwen_dir = locate(overrides.text_encoder, folder / "text_encoder", "Qwen2.5-VL text encoder");
  files.text_encoders.clip_dir = locate(overrides.text_encoder2, folder / "text_encoder_2", "CLIP text encoder");
  if (overrides.text_encoder.empty())
    files.text_encoders.qwen_tokenizer_dir = locate("", folder / "tokenizer", "Qwen2.5-VL tokenizer");
  if (overrides.text_encoder2.empty())
    files.text_encoders.clip_tokenizer_dir = locate("", folder / "tokenizer_2", "CLIP tokenizer");
  K5_CHECK(missing.empty(), "model ", folder.string(), " is missing: ", missing);
  return files;
}

}  // namespace

std::vector<std::string> config_names(const std::string& model) {
  std::error_code error;
  if (!fs::is_directory(model, error)) return {fs::path(model).stem().string()};
  std::vector<std::string> names;
  for (const fs::path& config : configs_in(model)) names.push_back(config.stem().string());
  return names;
}

ModelFiles find_model_files(const std::string& model, const ModelOverrides& overrides) {
  if (fs::is_directory(model) && fs::exists(fs::path(model) / "model_index.json"))
    return diffusers_model(fs::path(model), overrides);
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
