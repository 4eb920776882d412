#include "models/qwen25vl/qwen_config.h"

#include "core/error.h"
#include "io/json_fields.h"

namespace k5 {

namespace {

// rope_theta and mrope_section moved over versions: top level + "rope_scaling" (released files) or
// "rope_parameters" (transformers 5).
void read_rope(const JsonFields& text, QwenTextConfig& config) {
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    if (!text.has(key) || !text.json().at(key).is_object()) continue;
    const JsonFields rope = text.object(key);
    if (rope.has("rope_theta")) config.rope_theta = rope.number("rope_theta");
    if (rope.has("mrope_section")) config.mrope_section = rope.integers("mrope_section");
    const std::string type = rope.string("rope_type", rope.string("type", "default"));
    K5_CHECK(type == "default" || type == "mrope", text.source(), ": unsupported ", key, " type '", type, "'");
  }
  if (text.has("rope_theta")) config.rope_theta = text.number("rope_theta");
}

}  // namespace

QwenTextConfig QwenTextConfig::from_json_file(const std::string& path) {
  const nlohmann::json json = read_json_file(path);
  const JsonFields top(json, path);
  const bool nested = top.has("text_config") && json.at("text_config").is_object() &&
                      json.at("text_config").contains("hidden_size");
  const JsonFields text = nested ? top.object("text_config") : top;
  QwenTextConfig config;
  config.hidden_size = text.integer("hidden_size");
  config.intermediate_size = text.integer("intermediate_size");
  config.num_hidden_layers = text.integer("num_hidden_layers");
  config.num_attention_heads = text.integer("num_attention_heads");
  config.num_key_value_heads = text.integer("num_key_value_heads", config.num_attention_heads);
  config.vocab_size = text.integer("vocab_size");
  config.rms_norm_eps = text.number("rms_norm_eps", 1e-6);
  if (nested) read_rope(top, config);  // some files keep rope settings at the top level only
  read_rope(text, config);
  K5_CHECK(config.hidden_size > 0 && config.num_attention_heads > 0 && config.num_key_value_heads > 0 &&
               config.num_hidden_layers > 0 && config.intermediate_size > 0 && config.vocab_size > 0,
           path, ": model sizes must be positive");
  K5_CHECK(config.hidden_size % config.num_attention_heads == 0, path, ": hidden_size ", config.hidden_size,
           " is not a multiple of num_attention_heads ", config.num_attention_heads);
  K5_CHECK(config.num_attention_heads % config.num_key_value_heads == 0, path, ": num_attention_heads ",
           config.num_attention_heads, " is not a multiple of num_key_value_heads ", config.num_key_value_heads);
  config.head_dim = config.hidden_size / config.num_attention_heads;
  K5_CHECK(config.head_dim % 2 == 0, path, ": head_dim ", config.head_dim, " must be even for RoPE");
  if (!config.mrope_section.empty()) {
    int64_t total = 0;
    for (int64_t s : config.mrope_section) total += s;
    K5_CHECK(total == config.head_dim / 2, path, ": mrope_section sums to ", total, ", expected head_dim/2 = ",
             config.head_dim / 2);
  }
  return config;
}

}  // namespace k5
