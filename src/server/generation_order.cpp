#include "server/generation_order.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "io/base64.h"

namespace k5 {
namespace {

using nlohmann::json;

class Fields {
 public:
  explicit Fields(const json& object) : object_(object) {}

  const json* find(const char* key) {
    known_.insert(key);
    const auto found = object_.find(key);
    return found == object_.end() || found->is_null() ? nullptr : &*found;
  }

  void text(const char* key, std::string& out) {
    if (const json* value = find(key)) {
      K5_CHECK(value->is_string(), "field '", key, "' must be a string");
      out = value->get<std::string>();
    }
  }
  void integer(const char* key, int& out, int64_t min, int64_t max) {
    if (const json* value = find(key)) out = int(whole_number(key, *value, min, max));
  }
  void number(const char* key, std::optional<double>& out) {
    if (const json* value = find(key)) {
      K5_CHECK(value->is_number(), "field '", key, "' must be a number");
      out = value->get<double>();
      K5_CHECK(std::isfinite(*out), "field '", key, "' must be finite");
    }
  }
  void boolean(const char* key, bool& out) {
    if (const json* value = find(key)) {
      K5_CHECK(value->is_boolean(), "field '", key, "' must be true or false");
      out = value->get<bool>();
    }
  }
  void choice(const char* key, std::string& out, const std::set<std::string>& choices) {
    if (!find(key)) return;
    text(key, out);
    std::string listed;
    for (const auto& c : choices) listed += (listed.empty() ? "" : ", ") + c;
    K5_CHECK(choices.count(out), "field '", key, "' must be one of ", listed);
  }
  // JSON numbers arrive as signed, unsigned or floating; each is compared in its own type (a double holds 2^63,
  // one past int64's range).
  static int64_t whole_number(const char* key, const json& value, int64_t min, int64_t max) {
    int64_t whole = 0;
    bool in_range = true;
    if (value.is_number_unsigned()) {
      const uint64_t number = value.get<uint64_t>();
      in_range = number <= uint64_t(std::numeric_limits<int64_t>::max());
      whole = in_range ? int64_t(number) : 0;
    } else if (value.is_number_integer()) {
      whole = value.get<int64_t>();
    } else {
      K5_CHECK(value.is_number_float() && std::trunc(value.get<double>()) == value.get<double>(), "field '", key,
               "' must be a whole number");
      const double number = value.get<double>();
      in_range = number >= -0x1p63 && number < 0x1p63;
      whole = in_range ? int64_t(number) : 0;
    }
    K5_CHECK(in_range && whole >= min && whole <= max, "field '", key, "' must be within ", min, "..", max);
    return whole;
  }

  void refuse_unknown() const {
    for (const auto& [key, value] : object_.items())
      K5_CHECK(known_.count(key), "unknown field '", key, "' (the fields are k5 generate's options; see README)");
  }

 private:
  const json& object_;
  std::set<std::string> known_;
};

}  // namespace

GenerationOrder parse_generation_order(const std::string& body) {
  json object;
  try {
    object = json::parse(body);
  } catch (const json::parse_error& e) {
    fail("the request body is not JSON (byte ", e.byte, ")");
  } catch (const json::exception&) {
    fail("the request body holds a number JSON cannot represent (out of range)");
  }
  K5_CHECK(object.is_object(), "the request body must be a JSON object");

  GenerationOrder order;
  GenerationRequest& r = order.request;
  Fields fields(object);
  K5_CHECK(fields.find("prompt"), "field 'prompt' is required");
  fields.text("prompt", r.prompt);
  K5_CHECK(!r.prompt.empty(), "field 'prompt' must not be empty");
  std::string negative;
  if (fields.find("negative_prompt")) {
    fields.text("negative_prompt", negative);
    r.negative_prompt = negative;
  }
  fields.text("config", order.config);
  K5_CHECK(order.config.find('/') == std::string::npos && order.config.find('\\') == std::string::npos &&
               !order.config.starts_with("."),
           "field 'config' must be a config name of the served model folder, not a path");
  constexpr int64_t max_int = std::numeric_limits<int>::max();
  fields.integer("width", r.width, 1, max_int);
  fields.integer("height", r.height, 1, max_int);
  fields.integer("duration", r.duration, 1, max_int);
  fields.integer("frames", r.frames, 1, max_int);
  fields.integer("steps", r.steps, 1, max_int);
  fields.number("cfg_scale", r.guidance);
  fields.number("scheduler_scale", r.scheduler_scale);
  if (const json* seed = fields.find("seed")) {
    const int64_t value = Fields::whole_number("seed", *seed, -1, std::numeric_limits<int64_t>::max());
    order.random_seed = value == -1;
    if (value >= 0) r.seed = uint64_t(value);
  }
  std::string rng;
  fields.choice("rng", rng, {"cuda", "cpu"});
  if (!rng.empty()) r.rng = parse_rng_device(rng);
  if (const json* image = fields.find("init_img")) {
    K5_CHECK(image->is_string(),
             "field 'init_img' must be a base64 string (or a data URL) of a PNG, JPEG or WebP file");
    order.init_image_bytes = decode_base64(image->get_ref<const std::string&>(), "field 'init_img'");
    K5_CHECK(!order.init_image_bytes.empty(), "field 'init_img' is empty");
  }
  fields.boolean("magcache", r.magcache);
  fields.boolean("text_only_edit", r.text_only_edit);
  fields.boolean("expand_prompt", r.expand_prompt);
  std::string by_frames;
  fields.choice("vae_by_frames", by_frames, {"auto", "on", "off"});
  if (!by_frames.empty() && by_frames != "auto") r.vae_by_frames = by_frames == "on";
  if (const json* loras = fields.find("lora")) {
    K5_CHECK(loras->is_array(), "field 'lora' must be a list of \"NAME[:MULTIPLIER]\" strings");
    for (const json& lora : *loras) {
      K5_CHECK(lora.is_string(), "field 'lora' must be a list of \"NAME[:MULTIPLIER]\" strings");
      r.loras.push_back(lora.get<std::string>());
    }
  }
  fields.choice("format", order.format, {"png", "jpg", "jpeg", "webp", "mp4"});
  if (order.format == "jpeg") order.format = "jpg";
  fields.integer("quality", order.quality, 1, 100);
  fields.integer("crf", order.crf, 0, 51);
  fields.refuse_unknown();
  return order;
}

}  // namespace k5
