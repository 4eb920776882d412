#include "models/crossdit/lora.h"

#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include "core/error.h"
#include "core/thread_pool.h"
#include "io/json_fields.h"
#include "io/safetensors.h"
#include "models/crossdit/crossdit_weights.h"

namespace k5 {
namespace {

namespace fs = std::filesystem;

constexpr const char* kLoraFiles[] = {"lora.safetensors", "adapter_model.safetensors"};  // official, PEFT
constexpr const char* kConfigFiles[] = {"config_lora.json", "adapter_config.json"};

std::string find_adapter_file(const std::string& path) {
  K5_CHECK(fs::exists(path), "LoRA adapter '", path, "' does not exist");
  if (!fs::is_directory(path)) return path;
  for (const char* name : kLoraFiles)
    if (fs::is_regular_file(fs::path(path) / name)) return (fs::path(path) / name).string();
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(path))
    if (entry.path().extension() == ".safetensors") found.push_back(entry.path().string());
  K5_CHECK(found.size() == 1, "LoRA folder '", path, "' holds ", found.size(),
           " .safetensors files and none is named lora.safetensors or adapter_model.safetensors");
  return found[0];
}

std::string find_config_file(const std::string& adapter_file) {
  const fs::path folder = fs::path(adapter_file).parent_path();
  for (const char* name : kConfigFiles)
    if (fs::is_regular_file(folder / name)) return (folder / name).string();
  return "";
}

// Python's re semantics for the patterns PEFT configs hold; a pattern std::regex rejects is a config error.
bool full_match(const std::string& pattern, const std::string& text, const std::string& source) {
  try {
    return std::regex_match(text, std::regex(pattern));
  } catch (const std::regex_error&) {
    fail(source, ": cannot read the pattern '", pattern, "'");
  }
}

// The subset of PEFT's LoraConfig that decides which layers an adapter changes and by how much.
class LoraConfig {
 public:
  LoraConfig() = default;
  explicit LoraConfig(const std::string& path) : source_(path) {
    const nlohmann::json plain = read_json_file(path);  // its errors name the file
    K5_CHECK(plain.is_object(), path, ": expected a JSON object (a PEFT LoraConfig)");
    std::ifstream stream(path);
    json_ = nlohmann::ordered_json::parse(stream);  // in file order: PEFT takes the first matching pattern
    const JsonFields fields(plain, path);
    rank_ = fields.integer("r", 8);
    alpha_ = fields.number("lora_alpha", 8);
    rslora_ = fields.boolean("use_rslora", false);
    K5_CHECK(rank_ > 0, path, ": r must be positive");
    K5_CHECK(!fields.boolean("use_dora", false), path, ": DoRA adapters (use_dora) are not supported");
    K5_CHECK(!fields.boolean("lora_bias", false), path, ": adapters with LoRA biases (lora_bias) are not supported");
    for (const char* key : {"rank_pattern", "alpha_pattern"})
      if (fields.has(key)) K5_CHECK(json_.at(key).is_object(), path, ": ", key, " must be an object");
  }

  bool present() const { return !source_.empty(); }

  // PEFT's check_target_module_exists: a string is a full regular expression, a list names modules or their
  // last components ("all-linear": every linear layer); exclude_modules the same way; layers_to_transform
  // keeps the blocks whose index follows `layers_pattern` (default: the first "name.index." in the key).
  bool targets(const std::string& module) const {
    if (!present()) return true;
    if (matches_modules("exclude_modules", module)) return false;
    const nlohmann::ordered_json* targets = field("target_modules");
    if (!targets) return true;  // PEFT needs target_modules to inject; a config without them came from elsewhere
    if (targets->is_string()) {
      const std::string pattern = targets->get<std::string>();
      return pattern == "all-linear" || full_match(pattern, module, source_);
    }
    if (!matches_modules("target_modules", module)) return false;
    const nlohmann::ordered_json* layers = field("layers_to_transform");
    if (!layers || (layers->is_array() && layers->empty())) return true;
    const int64_t index = layer_index(module);
    if (index < 0) return false;
    if (layers->is_number_integer()) return index == layers->get<int64_t>();
    for (const auto& layer : *layers)
      if (layer.is_number_integer() && layer.get<int64_t>() == index) return true;
    return false;
  }

  int64_t rank(const std::string& module) const {
    const nlohmann::ordered_json* value = pattern_value("rank_pattern", module);
    return value ? value->get<int64_t>() : rank_;
  }
  double scale(const std::string& module, int64_t rank) const {
    if (!present()) return 1.0;  // no config: lora_alpha = r, the usual convention of config-less files
    const nlohmann::ordered_json* value = pattern_value("alpha_pattern", module);
    const double alpha = value ? value->get<double>() : alpha_;
    return rslora_ ? alpha / std::sqrt(double(rank)) : alpha / double(rank);
  }

 private:
  const nlohmann::ordered_json* field(const char* key) const {
    const auto it = json_.find(key);
    return it == json_.end() || it->is_null() ? nullptr : &*it;
  }

  bool matches_modules(const char* key, const std::string& module) const {
    const nlohmann::ordered_json* names = field(key);
    if (!names) return false;
    if (names->is_string()) return full_match(names->get<std::string>(), module, source_);
    K5_CHECK(names->is_array(), source_, ": ", key, " must be a string or a list");
    for (const auto& name : *names) {
      K5_CHECK(name.is_string(), source_, ": ", key, " must list strings");
      const std::string target = name.get<std::string>();
      if (module == target || (module.size() > target.size() &&
                               module.compare(module.size() - target.size() - 1, std::string::npos, "." + target) == 0))
        return true;
    }
    return false;
  }

  int64_t layer_index(const std::string& module) const {
    std::vector<std::string> patterns;
    if (const nlohmann::ordered_json* given = field("layers_pattern")) {
      if (given->is_string()) patterns.push_back(given->get<std::string>());
      if (given->is_array())
        for (const auto& p : *given)
          if (p.is_string()) patterns.push_back(p.get<std::string>());
    }
    std::vector<std::string> expressions;
    if (patterns.empty()) expressions.push_back(R"(.*?\.[^.]*\.(\d+)\..*)");
    for (const std::string& p : patterns) expressions.push_back("(?:|.*?\\.)" + p + R"(\.(\d+)\..*)");
    std::smatch match;
    for (const std::string& expression : expressions) {
      try {
        if (std::regex_match(module, match, std::regex(expression))) return std::stoll(match[1].str());
      } catch (const std::regex_error&) {
        fail(source_, ": cannot read layers_pattern '", expression, "'");
      }
    }
    return -1;
  }

  // PEFT's get_pattern_key: the first pattern p (in file order) with `(.*\.)?(p)` matching the whole module.
  const nlohmann::ordered_json* pattern_value(const char* key, const std::string& module) const {
    const nlohmann::ordered_json* patterns = field(key);
    if (!patterns) return nullptr;
    for (const auto& [pattern, value] : patterns->items()) {
      if (!full_match("(.*\\.)?(" + pattern + ")", module, source_)) continue;
      K5_CHECK(value.is_number(), source_, ": ", key, " '", pattern, "' must be a number");
      return &value;
    }
    return nullptr;
  }

  std::string source_;
  nlohmann::ordered_json json_;
  int64_t rank_ = 8;
  double alpha_ = 8;
  bool rslora_ = false;
};

// The official load_adapter's key cleanup: one leading "base_model.model." or "transformer.", no ".default".
std::string official_key(const std::string& stored) {
  std::string key = stored;
  for (const std::string prefix : {"base_model.model.", "transformer."})
    if (key.rfind(prefix, 0) == 0) {
      key = key.substr(prefix.size());
      break;
    }
  for (size_t at; (at = key.find(".default")) != std::string::npos;) key.erase(at, 8);
  return key;
}

bool strip_suffix(std::string& text, const std::string& suffix) {
  if (text.size() <= suffix.size() || text.compare(text.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  text.resize(text.size() - suffix.size());
  return true;
}

}  // namespace

LoraSpec parse_lora_spec(const std::string& text) {
  LoraSpec spec{text, 1.0f};
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return spec;
  const std::string suffix = text.substr(colon + 1);
  char* end = nullptr;
  const double value = std::strtod(suffix.c_str(), &end);
  if (suffix.empty() || end != suffix.c_str() + suffix.size() || !std::isfinite(value)) return spec;
  return {text.substr(0, colon), float(value)};
}

LoraAdapter load_lora(const LoraSpec& spec, const DitParams& params) {
  LoraAdapter adapter;
  adapter.path = find_adapter_file(spec.path);
  adapter.multiplier = spec.multiplier;
  adapter.config = find_config_file(adapter.path);
  const LoraConfig config = adapter.config.empty() ? LoraConfig() : LoraConfig(adapter.config);
  const auto file = SafetensorsFile::open(adapter.path);
  const auto trigger = file->metadata().find("trigger");
  if (trigger != file->metadata().end()) adapter.trigger = trigger->second;

  std::map<std::string, Shape> linears;  // layer -> weight shape [out, in]
  for (const auto& [name, shape] : crossdit_parameter_shapes(params)) {
    std::string layer = name;
    if (shape.size() == 2 && strip_suffix(layer, ".weight")) linears[layer] = shape;
  }
  std::map<std::string, std::pair<Tensor, Tensor>> pairs;  // layer -> (lora_A, lora_B)
  for (const TensorInfo& info : file->tensors()) {
    std::string layer = official_key(info.name);
    const bool down = strip_suffix(layer, ".lora_A.weight");
    K5_CHECK(down || strip_suffix(layer, ".lora_B.weight"), adapter.path, ": '", info.name,
             "' is not a LoRA weight (<layer>.lora_A.weight / .lora_B.weight; DoRA, LoRA biases and other PEFT "
             "methods are not supported)");
    K5_CHECK(linears.count(layer), adapter.path, ": '", info.name, "' adapts '", layer,
             "', which is not a linear layer of this DiT");
    const Tensor tensor = file->tensor(info.name);
    K5_CHECK(tensor.dtype() == DType::F32 || tensor.dtype() == DType::BF16 || tensor.dtype() == DType::F16,
             adapter.path, ": '", info.name, "' has dtype ", tensor.describe(), ", expected a float type");
    (down ? pairs[layer].first : pairs[layer].second) = tensor.to(DType::F32).contiguous();
  }
  K5_CHECK(!pairs.empty(), adapter.path, ": no LoRA weights in the file");
  for (auto& [layer, pair] : pairs) {
    auto& [down, up] = pair;
    K5_CHECK(down.defined() && up.defined(), adapter.path, ": '", layer, "' has lora_",
             down.defined() ? "A without lora_B" : "B without lora_A");
    const Shape& weight = linears.at(layer);
    const int64_t rank = down.dim() == 2 ? down.size(0) : 0;
    K5_CHECK(rank > 0 && up.dim() == 2 && down.size(1) == weight[1] && up.size(0) == weight[0] && up.size(1) == rank,
             adapter.path, ": '", layer, "' has lora_A ", shape_string(down.shape()), " and lora_B ",
             shape_string(up.shape()), ", expected [r, ", weight[1], "] and [", weight[0], ", r]");
    if (!config.targets(layer)) {
      adapter.untargeted.push_back(layer);
      continue;
    }
    if (config.present())
      K5_CHECK(rank == config.rank(layer), adapter.path, ": '", layer, "' has rank ", rank, ", but ", adapter.config,
               " gives ", config.rank(layer));
    const float scale = float(double(spec.multiplier) * config.scale(layer, rank));
    adapter.layers[layer] = {std::move(down), std::move(up), scale};
  }
  return adapter;
}

void log_lora(Logger& log, const LoraAdapter& adapter) {
  log.info("LoRA ", adapter.path, ": ", adapter.layers.size(), " layers, multiplier ", adapter.multiplier,
           adapter.config.empty() ? ", no config beside it (lora_alpha = r)" : ", config " + adapter.config,
           adapter.trigger.empty() ? "" : ", trigger '" + adapter.trigger + "'");
  if (!adapter.untargeted.empty())
    log.warn("LoRA ", adapter.path, ": weights for ", adapter.untargeted.size(), " layers outside target_modules (",
             adapter.untargeted.front(), adapter.untargeted.size() > 1 ? ", ..." : "",
             ") are left alone, as PEFT leaves them");
}

std::vector<LoraAdapter> load_loras(Context& ctx, const std::vector<std::string>& specs, const DitParams& params) {
  std::vector<LoraAdapter> adapters;
  for (const std::string& text : specs) {
    adapters.push_back(load_lora(parse_lora_spec(text), params));
    log_lora(ctx.log(), adapters.back());
  }
  return adapters;
}

bool lora_adapts(const std::vector<LoraAdapter>& adapters, const std::string& layer) {
  for (const LoraAdapter& adapter : adapters)
    if (adapter.layers.count(layer)) return true;
  return false;
}

void apply_lora(const std::vector<LoraAdapter>& adapters, const std::string& layer, Tensor& weight) {
  for (const LoraAdapter& adapter : adapters) {
    const auto it = adapter.layers.find(layer);
    if (it == adapter.layers.end()) continue;
    const LoraLayer& lora = it->second;
    K5_CHECK(weight.dtype() == DType::F32 && weight.is_contiguous() && weight.dim() == 2 &&
                 weight.size(0) == lora.up.size(0) && weight.size(1) == lora.down.size(1),
             "LoRA '", layer, "': weight ", weight.describe(), " does not match the adapter");
    const int64_t rows = weight.size(0), columns = weight.size(1), rank = lora.down.size(0);
    const float* up = lora.up.data<float>();
    const float* down = lora.down.data<float>();
    float* w = weight.data<float>();
    // Row by row: the weight row stays in cache while the rank rows of lora_A stream past it. OpenMP's default
    // team is the context's --threads (Context sets it).
    ThreadPool pool(omp_get_max_threads());
    pool.parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
      for (int64_t o = begin; o < end; ++o) {
        float* row = w + o * columns;
        int64_t k = 0;
        for (; k + 4 <= rank; k += 4) {  // four rank rows per pass: a quarter of the row loads and stores
          const float* f = up + o * rank + k;
          const float f0 = lora.scale * f[0], f1 = lora.scale * f[1], f2 = lora.scale * f[2], f3 = lora.scale * f[3];
          const float *s0 = down + k * columns, *s1 = s0 + columns, *s2 = s1 + columns, *s3 = s2 + columns;
          for (int64_t i = 0; i < columns; ++i) row[i] += f0 * s0[i] + f1 * s1[i] + f2 * s2[i] + f3 * s3[i];
        }
        for (; k < rank; ++k) {
          const float factor = lora.scale * up[o * rank + k];
          const float* source = down + k * columns;
          for (int64_t i = 0; i < columns; ++i) row[i] += factor * source[i];
        }
      }
    });
  }
}

std::string lora_triggers(const std::vector<LoraAdapter>& adapters) {
  std::string prefix;
  for (const LoraAdapter& adapter : adapters) prefix += adapter.trigger;
  return prefix;
}

}  // namespace k5
