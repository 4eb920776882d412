#include "io/kandinsky_config.h"

#include <yaml-cpp/yaml.h>

#include "core/error.h"

namespace k5 {

namespace {

// A YAML mapping together with its key path, so that every error names the file and the full key
// ("model.dit_params.model_dim"). Keys the official configs carry but k5 does not use are ignored.
class YamlFields {
 public:
  YamlFields(YAML::Node node, std::string file, std::string prefix)
      : node_(std::move(node)), file_(std::move(file)), prefix_(std::move(prefix)) {
    K5_CHECK(node_.IsMap(), file_, ": '", prefix_.empty() ? std::string("(top level)") : prefix_,
             "' must be a mapping");
  }

  bool has(const std::string& key) const {
    const YAML::Node value = node_[key];
    return value.IsDefined() && !value.IsNull();
  }

  YamlFields map(const std::string& key) const { return YamlFields(get(key), file_, path(key)); }

  int64_t integer(const std::string& key) const { return scalar<int64_t>(key, "an integer"); }
  double number(const std::string& key) const { return scalar<double>(key, "a number"); }
  bool boolean(const std::string& key) const { return scalar<bool>(key, "a boolean (true/false)"); }
  std::string string(const std::string& key) const { return scalar<std::string>(key, "a string"); }

  int64_t integer(const std::string& key, int64_t fallback) const { return has(key) ? integer(key) : fallback; }
  double number(const std::string& key, double fallback) const { return has(key) ? number(key) : fallback; }
  bool boolean(const std::string& key, bool fallback) const { return has(key) ? boolean(key) : fallback; }
  std::string string(const std::string& key, const std::string& fallback) const {
    return has(key) ? string(key) : fallback;
  }

  template <typename T>
  std::vector<T> list(const std::string& key, const char* expected) const {
    const YAML::Node value = get(key);
    K5_CHECK(value.IsSequence(), file_, ": '", path(key), "' must be a list of ", expected);
    std::vector<T> result;
    for (size_t i = 0; i < value.size(); ++i) {
      const YAML::Node item = value[i];
      T converted{};
      K5_CHECK(item.IsScalar() && YAML::convert<T>::decode(item, converted), file_, ": '", path(key),
               "' must be a list of ", expected, " (entry ", i, " is not)");
      result.push_back(converted);
    }
    return result;
  }

  template <typename T, size_t N>
  std::array<T, N> fixed_list(const std::string& key, const char* expected) const {
    const auto values = list<T>(key, expected);
    K5_CHECK(values.size() == N, file_, ": '", path(key), "' must have ", N, " entries, found ", values.size());
    std::array<T, N> result{};
    std::copy(values.begin(), values.end(), result.begin());
    return result;
  }

  std::string path(const std::string& key) const { return prefix_.empty() ? key : prefix_ + "." + key; }
  const std::string& file() const { return file_; }

 private:
  YAML::Node get(const std::string& key) const {
    const YAML::Node value = node_[key];
    K5_CHECK(value.IsDefined() && !value.IsNull(), file_, ": missing key '", path(key), "'");
    return value;
  }

  template <typename T>
  T scalar(const std::string& key, const char* expected) const {
    const YAML::Node value = get(key);
    T converted{};
    K5_CHECK(value.IsScalar() && YAML::convert<T>::decode(value, converted), file_, ": '", path(key),
             "' must be ", expected);
    return converted;
  }

  YAML::Node node_;
  std::string file_;
  std::string prefix_;
};

void check_positive(const YamlFields& fields, const std::string& key, int64_t value) {
  K5_CHECK(value > 0, fields.file(), ": '", fields.path(key), "' must be positive, found ", value);
}

DitParams read_dit_params(const YamlFields& fields) {
  DitParams dit;
  dit.in_visual_dim = fields.integer("in_visual_dim");
  dit.out_visual_dim = fields.integer("out_visual_dim");
  dit.time_dim = fields.integer("time_dim");
  dit.patch_size = fields.fixed_list<int64_t, 3>("patch_size", "integers");
  dit.model_dim = fields.integer("model_dim");
  dit.ff_dim = fields.integer("ff_dim");
  dit.num_text_blocks = fields.integer("num_text_blocks");
  dit.num_visual_blocks = fields.integer("num_visual_blocks");
  dit.axes_dims = fields.fixed_list<int64_t, 3>("axes_dims", "integers");
  // Present only in some configs (video I2V-capable models, the editing model); defaults per spec/dit.md.
  dit.visual_cond = fields.boolean("visual_cond", false);
  dit.instruct_type = fields.string("instruct_type", "");
  dit.in_text_dim = fields.integer("in_text_dim", dit.in_text_dim);
  dit.in_text_dim2 = fields.integer("in_text_dim2", dit.in_text_dim2);

  for (const char* key : {"in_visual_dim", "out_visual_dim", "time_dim", "model_dim", "ff_dim", "num_text_blocks",
                          "num_visual_blocks", "in_text_dim", "in_text_dim2"})
    check_positive(fields, key, fields.integer(key, 1));
  for (int64_t extent : dit.patch_size) check_positive(fields, "patch_size", extent);
  for (int64_t extent : dit.axes_dims) {
    // RoPE rotates pairs, so every axis needs an even share of the head.
    K5_CHECK(extent > 0 && extent % 2 == 0, fields.file(), ": '", fields.path("axes_dims"),
             "' entries must be positive and even, found ", extent);
  }
  K5_CHECK(dit.model_dim % dit.head_dim() == 0, fields.file(), ": '", fields.path("model_dim"), "' (",
           dit.model_dim, ") is not a multiple of the head dim sum(axes_dims) = ", dit.head_dim());
  K5_CHECK(dit.instruct_type.empty() || dit.instruct_type == "channel", fields.file(), ": '",
           fields.path("instruct_type"), "' must be \"channel\", found \"", dit.instruct_type, "\"");
  return dit;
}

AttentionConfig read_attention(const YamlFields& fields) {
  AttentionConfig attention;
  attention.type = fields.string("type");
  K5_CHECK(attention.type == "flash" || attention.type == "nabla", fields.file(), ": '", fields.path("type"),
           "' must be \"flash\" or \"nabla\", found \"", attention.type, "\"");
  attention.causal = fields.boolean("causal");
  attention.local = fields.boolean("local");
  attention.glob = fields.boolean("glob");
  attention.window = fields.integer("window");
  attention.chunk = fields.boolean("chunk", false);
  if (attention.type == "nabla") {
    // The sparse-attention parameters are part of every NABLA config; a NABLA config without them is broken.
    attention.P = fields.number("P");
    attention.wT = fields.integer("wT");
    attention.wH = fields.integer("wH");
    attention.wW = fields.integer("wW");
    attention.add_sta = fields.boolean("add_sta");
    attention.method = fields.string("method");
    K5_CHECK(attention.P > 0 && attention.P <= 1, fields.file(), ": '", fields.path("P"), "' must be in (0, 1]");
  }
  return attention;
}

}  // namespace

KandinskyConfig load_kandinsky_config(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    fail(path, ": cannot open");
  } catch (const YAML::Exception& error) {
    fail(path, ": not valid YAML (line ", error.mark.line + 1, ": ", error.msg, ")");
  }
  KandinskyConfig config;
  config.source = path;
  try {
    const YamlFields top(root, path, "");

    const YamlFields metrics = top.map("metrics");
    config.scale_factor = metrics.fixed_list<double, 3>("scale_factor", "numbers");
    for (double factor : config.scale_factor)
      K5_CHECK(factor > 0, path, ": 'metrics.scale_factor' entries must be positive");
    config.resolution = metrics.integer("resolution");
    if (metrics.has("scheduler_scale")) config.scheduler_scale = metrics.number("scheduler_scale");

    const YamlFields model = top.map("model");
    config.checkpoint_path = model.string("checkpoint_path");
    config.num_steps = model.integer("num_steps");
    check_positive(model, "num_steps", config.num_steps);
    config.guidance_weight = model.number("guidance_weight");
    config.dit = read_dit_params(model.map("dit_params"));
    config.attention = read_attention(model.map("attention"));

    const YamlFields vae = model.map("vae");
    config.vae.checkpoint_path = vae.string("checkpoint_path");
    config.vae.name = vae.string("name");
    K5_CHECK(config.vae.name == "hunyuan" || config.vae.name == "flux", path,
             ": 'model.vae.name' must be \"hunyuan\" or \"flux\", found \"", config.vae.name, "\"");

    const YamlFields text_embedder = model.map("text_embedder");
    const YamlFields qwen = text_embedder.map("qwen");
    config.text_embedder.qwen_emb_size = qwen.integer("emb_size");
    config.text_embedder.qwen_checkpoint_path = qwen.string("checkpoint_path");
    config.text_embedder.qwen_max_length = qwen.integer("max_length");
    const YamlFields clip = text_embedder.map("clip");
    config.text_embedder.clip_emb_size = clip.integer("emb_size");
    config.text_embedder.clip_checkpoint_path = clip.string("checkpoint_path");
    config.text_embedder.clip_max_length = clip.integer("max_length");
    check_positive(qwen, "max_length", config.text_embedder.qwen_max_length);
    check_positive(clip, "max_length", config.text_embedder.clip_max_length);

    if (top.has("magcache")) config.mag_ratios = top.map("magcache").list<double>("mag_ratios", "numbers");
  } catch (const YAML::Exception& error) {
    fail(path, ": malformed YAML (", error.msg, ")");
  }
  return config;
}

}  // namespace k5
