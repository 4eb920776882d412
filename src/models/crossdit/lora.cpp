#include "models/crossdit/lora.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <regex>
#include <set>

#include "core/error.h"
#include "io/file_stamp.h"
#include "io/json_fields.h"
#include "io/safetensors.h"
#include "models/crossdit/crossdit_weights.h"
#include "ops/linear.h"

namespace k5 {
namespace {

namespace fs = std::filesystem;

bool is_file(const fs::path& path) {
  std::error_code error;
  return fs::is_regular_file(path, error);
}

}  // namespace

std::string find_lora_file(const std::string& path) {
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  K5_CHECK(fs::exists(status), "LoRA adapter '", path, "' does not exist");
  if (!fs::is_directory(status)) {
    K5_CHECK(fs::is_regular_file(status), "LoRA adapter '", path, "' is not a file");
    return path;
  }
  for (const char* name : {"lora.safetensors", "adapter_model.safetensors"})
    if (is_file(fs::path(path) / name)) return (fs::path(path) / name).string();
  std::vector<std::string> found;
  for (fs::directory_iterator it(path, error), end; !error && it != end; it.increment(error))
    if (it->path().extension() == ".safetensors" && is_file(it->path())) found.push_back(it->path().string());
  K5_CHECK(!error, "LoRA folder '", path, "': cannot list it: ", error.message());
  K5_CHECK(found.size() == 1, "LoRA folder '", path, "' holds ", found.size(),
           " .safetensors files and none is named lora.safetensors or adapter_model.safetensors");
  return found[0];
}

namespace {

// The config beside the file: its own name's partner first (official lora.safetensors + config_lora.json, PEFT
// adapter_model.safetensors + adapter_config.json), then the other.
std::string find_config_file(const std::string& adapter_file) {
  const fs::path folder = fs::path(adapter_file).parent_path();
  const bool peft = fs::path(adapter_file).filename() == "adapter_model.safetensors";
  for (const char* name : peft ? std::vector<const char*>{"adapter_config.json", "config_lora.json"}
                               : std::vector<const char*>{"config_lora.json", "adapter_config.json"})
    if (is_file(folder / name)) return (folder / name).string();
  return "";
}

bool is_empty_value(const nlohmann::ordered_json& value) {
  return value.is_null() || (value.is_boolean() && !value.get<bool>()) ||
         ((value.is_object() || value.is_array()) && value.empty()) ||
         (value.is_string() && value.get_ref<const std::string&>().empty());
}

bool equals_ignoring_case(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// The subset of PEFT's LoraConfig that decides which layers an adapter changes and by how much.
class LoraConfig {
 public:
  LoraConfig() = default;
  // In file order: PEFT takes the first matching pattern.
  explicit LoraConfig(const std::string& path) : source_(path), json_(read_ordered_json_file(path)) {
    K5_CHECK(json_.is_object(), path, ": expected a JSON object (a PEFT LoraConfig)");
    const nlohmann::json plain = json_;
    const JsonFields fields(plain, path);
    rank_ = fields.integer("r", 8);
    alpha_ = fields.number("lora_alpha", 8);
    rslora_ = fields.boolean("use_rslora", false);
    K5_CHECK(rank_ > 0, path, ": r must be positive");
    refuse_options();
    check_targets();
    for (const char* key : {"rank_pattern", "alpha_pattern"})
      if (const auto* patterns = field(key)) {
        K5_CHECK(patterns->is_object(), path, ": ", key, " must be an object");
        for (const auto& [pattern, value] : patterns->items()) {
          const bool rank = std::string(key) == "rank_pattern";
          K5_CHECK(rank ? value.is_number_integer() && value.get<int64_t>() > 0 && value.get<int64_t>() < (1 << 20)
                        : value.is_number() && std::isfinite(value.get<double>()),
                   path, ": ", key, " '", pattern, "' must be ", rank ? "a positive integer" : "a number");
        }
      }
  }

  bool present() const { return !source_.empty(); }
  bool all_linear() const {
    const nlohmann::ordered_json* targets = field("target_modules");
    return targets && targets->is_string() && equals_ignoring_case(targets->get<std::string>(), "all-linear");
  }

  // PEFT's check_target_module_exists: exclude_modules first; a string target_modules is a full regular
  // expression ("all-linear", in any case: every linear layer); a list names layers exactly, or by their last
  // components, and only the latter are filtered by layers_to_transform (the block index after one of
  // layers_pattern; PEFT's default pattern, a component before the block name, never matches the DiT's keys).
  bool targets(const std::string& layer) {
    if (!present()) return true;
    if (matches_names("exclude_modules", layer)) return false;
    const nlohmann::ordered_json& targets = *field("target_modules");
    if (targets.is_string()) return all_linear() || full_match(targets.get<std::string>(), layer);
    for (const auto& name : targets)
      if (name.get<std::string>() == layer) return true;
    if (!matches_names("target_modules", layer)) return false;
    const nlohmann::ordered_json* layers = field("layers_to_transform");
    if (!layers || (layers->is_array() && layers->empty())) return true;
    const int64_t index = block_index(layer);
    if (index < 0) return false;
    if (layers->is_number_integer()) return index == layers->get<int64_t>();
    for (const auto& entry : *layers)
      if (entry.get<int64_t>() == index) return true;
    return false;
  }

  int64_t rank(const std::string& layer) {
    const nlohmann::ordered_json* value = pattern_value("rank_pattern", layer);
    return value ? value->get<int64_t>() : rank_;
  }
  double scale(const std::string& layer, int64_t rank) {
    if (!present()) return 1.0;  // no config: lora_alpha = r, the usual convention of config-less files
    const nlohmann::ordered_json* value = pattern_value("alpha_pattern", layer);
    const double alpha = value ? value->get<double>() : alpha_;
    return rslora_ ? alpha / std::sqrt(double(rank)) : alpha / double(rank);
  }

 private:
  const nlohmann::ordered_json* field(const char* key) const {
    const auto it = json_.find(key);
    return it == json_.end() || it->is_null() ? nullptr : &*it;
  }

  // Options under which PEFT changes more than W by the low-rank product (other LoRA variants, base weights
  // rewritten at injection, whole layers trained beside the adapter): refused, not silently ignored.
  void refuse_options() const {
    for (const char* key : {"use_dora", "lora_bias", "use_bdlora", "use_qalora", "modules_to_save", "target_parameters",
                            "trainable_token_indices", "layer_replication", "alora_invocation_tokens", "arrow_config",
                            "velora_config", "monteclora_config", "kasa_config"})
      if (const auto* value = field(key))
        K5_CHECK(is_empty_value(*value), source_, ": ", key, " is not supported (k5 applies plain LoRA adapters)");
    if (const auto* bias = field("bias"))
      K5_CHECK(*bias == "none", source_, ": bias ", bias->dump(), " (trained biases) is not supported");
    if (const auto* init = field("init_lora_weights")) {
      const bool plain =
          init->is_boolean() ||
          (init->is_string() && (*init == "gaussian" || *init == "eva" || *init == "orthogonal" || *init == "mica"));
      K5_CHECK(plain, source_, ": init_lora_weights ", init->dump(),
               " rewrites the base weights when PEFT loads the adapter; not supported");
    }
  }

  void check_targets() const {
    const nlohmann::ordered_json* targets = field("target_modules");
    K5_CHECK(targets && !is_empty_value(*targets) && (targets->is_string() || targets->is_array()), source_,
             ": target_modules must name the layers (a list or a regular expression), as PEFT needs");
    for (const char* key : {"target_modules", "exclude_modules"})
      if (const auto* names = field(key); names && names->is_array())
        for (const auto& name : *names) K5_CHECK(name.is_string(), source_, ": ", key, " must list strings");
    if (const auto* excluded = field("exclude_modules"))
      K5_CHECK(excluded->is_string() || excluded->is_array(), source_, ": exclude_modules must be a string or a list");
    const nlohmann::ordered_json* layers = field("layers_to_transform");
    const nlohmann::ordered_json* pattern = field("layers_pattern");
    K5_CHECK(!targets->is_string() || (!layers && !pattern), source_,
             ": layers_to_transform / layers_pattern need target_modules as a list (PEFT refuses them with a "
             "regular expression)");
    K5_CHECK(layers || !pattern || is_empty_value(*pattern), source_,
             ": layers_pattern needs layers_to_transform, as PEFT says");
    if (layers) {
      bool integers = layers->is_number_integer() || layers->is_array();
      if (layers->is_array())
        for (const auto& entry : *layers) integers = integers && entry.is_number_integer();
      K5_CHECK(integers, source_, ": layers_to_transform must be an integer or a list of integers");
    }
    if (pattern) {
      bool strings = pattern->is_string() || pattern->is_array();
      if (pattern->is_array())
        for (const auto& entry : *pattern) strings = strings && entry.is_string();
      K5_CHECK(strings, source_, ": layers_pattern must be a string or a list of strings");
    }
  }

  // Python's `re` syntax as std::regex (ECMAScript) reads it: \A and \Z become anchors, named groups plain
  // groups; what ECMAScript cannot express is refused by name rather than matched differently.
  const std::regex& compiled(const std::string& pattern) {
    const auto found = regexes_.find(pattern);
    if (found != regexes_.end()) return found->second;
    std::string translated;
    for (size_t i = 0; i < pattern.size(); ++i) {
      if (pattern[i] == '\\' && i + 1 < pattern.size()) {
        const char next = pattern[i + 1];
        K5_CHECK(next != 'z' && next != 'G', source_, ": the pattern '", pattern, "' uses \\", next,
                 ", which k5 cannot read");
        translated += next == 'A' ? "^" : next == 'Z' ? "$" : pattern.substr(i, 2);
        ++i;
      } else if (pattern.compare(i, 4, "(?P<") == 0) {
        const size_t close = pattern.find('>', i);
        K5_CHECK(close != std::string::npos, source_, ": cannot read the pattern '", pattern, "'");
        translated += "(";
        i = close;
      } else {
        K5_CHECK(pattern.compare(i, 4, "(?P=") != 0 && pattern.compare(i, 3, "(?<") != 0 &&
                     !(pattern.compare(i, 2, "(?") == 0 && i + 2 < pattern.size() &&
                       std::isalpha(static_cast<unsigned char>(pattern[i + 2]))),
                 source_, ": the pattern '", pattern,
                 "' uses Python-only syntax (flags, look-behind or back-references by name), which k5 cannot read");
        translated += pattern[i];
      }
    }
    try {
      return regexes_.emplace(pattern, std::regex(translated)).first->second;
    } catch (const std::regex_error&) {
      fail(source_, ": cannot read the pattern '", pattern, "'");
    }
  }
  bool full_match(const std::string& pattern, const std::string& text) {
    return std::regex_match(text, compiled(pattern));
  }

  // PEFT's name rule: a string is a full regular expression; a list entry is the layer's name or its last
  // components.
  bool matches_names(const char* key, const std::string& layer) {
    const nlohmann::ordered_json* names = field(key);
    if (!names) return false;
    if (names->is_string()) return full_match(names->get<std::string>(), layer);
    for (const auto& entry : *names) {
      const std::string name = entry.get<std::string>();
      if (layer == name || layer.ends_with("." + name)) return true;
    }
    return false;
  }

  // The block index PEFT reads for layers_to_transform: `re.match` (a match at the start) of the number after one
  // of layers_pattern, the first pattern that matches deciding (its own groups come first, so the index is the
  // last group; unset: no index), or PEFT's default pattern when none is given.
  int64_t block_index(const std::string& layer) {
    std::vector<std::string> expressions;
    if (const nlohmann::ordered_json* given = field("layers_pattern")) {
      if (given->is_string() && !is_empty_value(*given)) expressions.push_back(given->get<std::string>());
      if (given->is_array())
        for (const auto& p : *given) expressions.push_back(p.get<std::string>());
    }
    for (std::string& p : expressions) p = "(?:^|.*?\\.)" + p + R"(\.(\d+)\.)";
    if (expressions.empty()) expressions.push_back(R"(.*?\.[^.]*\.(\d+)\.)");
    std::smatch match;
    for (const std::string& expression : expressions)
      if (std::regex_search(layer, match, compiled(expression), std::regex_constants::match_continuous)) {
        const auto& index = match[match.size() - 1];
        return index.matched && index.length() <= 9 ? std::stoll(index.str()) : -1;
      }
    return -1;
  }

  // PEFT's get_pattern_key: the first pattern p (in file order) with `(.*\.)?(p)` matching the whole layer name.
  const nlohmann::ordered_json* pattern_value(const char* key, const std::string& layer) {
    const nlohmann::ordered_json* patterns = field(key);
    if (!patterns) return nullptr;
    for (const auto& [pattern, value] : patterns->items())
      if (full_match("(.*\\.)?(" + pattern + ")", layer)) return &value;
    return nullptr;
  }

  std::string source_;
  nlohmann::ordered_json json_;
  std::map<std::string, std::regex> regexes_;
  int64_t rank_ = 8;
  double alpha_ = 8;
  bool rslora_ = false;
};

// The official load_adapter's key cleanup: one leading "base_model.model." or "transformer.", then every
// ".default" removed (Python's str.replace: left to right, not rescanned).
std::string official_key(const std::string& stored) {
  std::string key = stored;
  for (const std::string prefix : {"base_model.model.", "transformer."})
    if (key.starts_with(prefix)) {
      key = key.substr(prefix.size());
      break;
    }
  std::string cleaned;
  for (size_t from = 0;;) {
    const size_t at = key.find(".default", from);
    cleaned += key.substr(from, at == std::string::npos ? std::string::npos : at - from);
    if (at == std::string::npos) return cleaned;
    from = at + 8;
  }
}

bool strip_suffix(std::string& text, const std::string& suffix) {
  if (text.size() <= suffix.size() || !text.ends_with(suffix)) return false;
  text.resize(text.size() - suffix.size());
  return true;
}

bool is_float(DType dtype) { return dtype == DType::F32 || dtype == DType::BF16 || dtype == DType::F16; }

}  // namespace

LoraSpec parse_lora_spec(const std::string& text) {
  LoraSpec spec{text, 1.0f};
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return spec;
  const std::string suffix = text.substr(colon + 1);
  char* end = nullptr;
  const double value = std::strtod(suffix.c_str(), &end);
  if (suffix.empty() || end != suffix.c_str() + suffix.size() || !std::isfinite(float(value))) return spec;
  return {text.substr(0, colon), float(value)};
}

LoraAdapter load_lora(const LoraSpec& spec, const DitParams& params) {
  LoraAdapter adapter;
  adapter.given_path = spec.path;
  adapter.path = find_lora_file(spec.path);
  adapter.multiplier = spec.multiplier;
  adapter.config = find_config_file(adapter.path);
  adapter.file_stamp = file_stamp(adapter.path) + "\n" + file_stamp(adapter.config);
  LoraConfig config = adapter.config.empty() ? LoraConfig() : LoraConfig(adapter.config);
  const auto file = SafetensorsFile::open(adapter.path);
  const auto trigger = file->metadata().find("trigger");
  if (trigger != file->metadata().end()) adapter.trigger = trigger->second;

  std::map<std::string, Shape> linears;  // layer -> weight shape [out, in]
  std::set<std::string> modules;         // every module holding parameters: the dotted prefixes of their names
  for (const auto& [name, shape] : crossdit_parameter_shapes(params)) {
    std::string layer = name;
    if (shape.size() == 2 && strip_suffix(layer, ".weight")) linears[layer] = shape;
    for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1))
      modules.insert(name.substr(0, dot));
  }
  // PEFT refuses a config that selects a module it cannot adapt (an attention block, a norm, a list of blocks).
  if (config.present() && !config.all_linear())
    for (const std::string& module : modules)
      K5_CHECK(linears.count(module) || !config.targets(module), adapter.config, ": target_modules selects '", module,
               "', which is not a linear layer (PEFT refuses it)");
  std::map<std::string, std::pair<Tensor, Tensor>> pairs;  // layer -> (lora_A, lora_B)
  std::set<std::string> seen;                              // keys after the cleanup
  for (const TensorInfo& info : file->tensors()) {
    const std::string key = official_key(info.name);
    K5_CHECK(seen.insert(key).second, adapter.path, ": '", info.name, "' repeats '", key,
             "' (the same weight under another prefix)");
    std::string layer = key;
    const bool down = strip_suffix(layer, ".lora_A.weight");
    const bool up = !down && strip_suffix(layer, ".lora_B.weight");
    K5_CHECK(down || up, adapter.path, ": '", info.name,
             "' is not a LoRA weight (<layer>.lora_A.weight / .lora_B.weight; DoRA, LoRA biases and other PEFT "
             "methods are not supported)");
    K5_CHECK(linears.count(layer), adapter.path, ": '", info.name, "' adapts '", layer,
             "', which is not a linear layer of this DiT");
    K5_CHECK(is_float(info.dtype), adapter.path, ": '", info.name, "' has dtype ", dtype_name(info.dtype),
             ", expected a float type");
    (down ? pairs[layer].first : pairs[layer].second) = file->tensor(info.name);
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
      adapter.left_alone.push_back(layer);
      continue;
    }
    if (config.present())
      K5_CHECK(rank == config.rank(layer), adapter.path, ": '", layer, "' has rank ", rank, ", but ", adapter.config,
               " gives ", config.rank(layer));
    const float scale = float(double(spec.multiplier) * config.scale(layer, rank));
    adapter.layers[layer] = {std::move(down), std::move(up), scale};
  }
  K5_CHECK(!adapter.layers.empty(), adapter.path, ": ", adapter.config,
           " targets none of the adapter's layers (target_modules, exclude_modules, layers_to_transform): none of its "
           "weights would be used");
  return adapter;
}

void log_lora(Logger& log, const LoraAdapter& adapter) {
  log.info("LoRA ", adapter.path, ": ", adapter.layers.size(), " layers, multiplier ", adapter.multiplier,
           adapter.config.empty() ? "" : ", config " + adapter.config,
           adapter.trigger.empty() ? "" : ", trigger '" + adapter.trigger + "'");
  if (adapter.config.empty())
    log.warn("LoRA ", adapter.path, ": no config_lora.json or adapter_config.json beside it: lora_alpha = r (scale 1)");
  if (!adapter.left_alone.empty())
    log.warn("LoRA ", adapter.path, ": weights for ", adapter.left_alone.size(), " layers its config does not target (",
             adapter.left_alone.front(), adapter.left_alone.size() > 1 ? ", ..." : "",
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

Tensor merge_lora(Context& ctx, const std::vector<LoraAdapter>& adapters, const std::string& layer,
                  const Tensor& weight, DType dtype) {
  K5_CHECK(weight.dim() == 2 && weight.is_contiguous() && weight.device() == Device::CPU &&
               (weight.dtype() == DType::F32 || weight.dtype() == DType::BF16 || weight.dtype() == DType::F16),
           "LoRA '", layer, "': weight ", weight.describe(), " is not a host float matrix");
  const int64_t out_features = weight.size(0), in_features = weight.size(1);
  // Per adapter: scale * B [out, r] and A [r, in] in float32 (the scale rides the small factor).
  std::vector<std::pair<Tensor, Tensor>> factors;
  for (const LoraAdapter& adapter : adapters) {
    const auto it = adapter.layers.find(layer);
    if (it == adapter.layers.end()) continue;
    const LoraLayer& lora = it->second;
    K5_CHECK(lora.up.size(0) == out_features && lora.down.size(1) == in_features, "LoRA '", layer, "': weight ",
             weight.describe(), " does not match the adapter");
    Tensor scaled_up = lora.up.to(DType::F32).clone();
    float* up = scaled_up.data<float>();
    for (int64_t i = 0; i < scaled_up.numel(); ++i) up[i] *= lora.scale;
    factors.emplace_back(scaled_up, lora.down.to(DType::F32).contiguous());
  }

  // Row blocks of at most ~1 MB in float32, at least four per thread: W rows -> float32, += (scale B rows) A for each
  // adapter (the accumulating GEMM, single-threaded inside a pool task), -> `dtype`. The whole layer is never held
  // in float32.
  Tensor merged = Tensor::empty(dtype, {out_features, in_features});
  const int64_t per_thread = (out_features + 4 * ctx.threads() - 1) / (4 * int64_t(ctx.threads()));
  const int64_t block_rows =
      std::max<int64_t>(1, std::min((int64_t(1) << 18) / std::max<int64_t>(1, in_features), per_thread));
  const int64_t blocks = (out_features + block_rows - 1) / block_rows;
  const size_t source_row_bytes = size_t(in_features) * dtype_size(weight.dtype());
  const size_t merged_row_bytes = size_t(in_features) * dtype_size(dtype);
  ctx.pool().parallel_for(0, blocks, 1, [&](int64_t first_block, int64_t end_block) {
    const std::unique_ptr<float[]> rows_f32(new float[size_t(block_rows * in_features)]);  // each block overwrites it
    for (int64_t block = first_block; block < end_block; ++block) {
      const int64_t row = block * block_rows, rows = std::min(block_rows, out_features - row);
      const size_t count = size_t(rows * in_features);
      convert_to_f32(static_cast<const uint8_t*>(weight.raw()) + size_t(row) * source_row_bytes, weight.dtype(),
                     rows_f32.get(), count);
      Tensor accumulator = Tensor::wrap(rows_f32.get(), DType::F32, {rows, in_features});
      for (const auto& [scaled_up, down] : factors) {
        const int64_t rank = scaled_up.size(1);
        const Tensor up_rows = Tensor::wrap(scaled_up.data<float>() + row * rank, DType::F32, {rows, rank});
        ops::matmul(ctx, up_rows, down, accumulator, /*accumulate=*/true);
      }
      convert_from_f32(rows_f32.get(), static_cast<uint8_t*>(merged.raw()) + size_t(row) * merged_row_bytes, dtype,
                       count);
    }
  });
  return merged;
}

std::string lora_triggers(const std::vector<LoraAdapter>& adapters) {
  std::string prefix;
  std::set<std::string> used;
  for (const LoraAdapter& adapter : adapters)
    if (!adapter.trigger.empty() && adapter.multiplier != 0.0f && used.insert(adapter.trigger).second)
      prefix += adapter.trigger;
  return prefix;
}

}  // namespace k5
