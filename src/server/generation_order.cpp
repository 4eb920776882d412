#include "server/generation_order.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
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

json parse_body(const std::string& body) {
  json object;
  try {
    object = json::parse(body);
  } catch (const json::parse_error& e) {
    fail("the request body is not JSON (byte ", e.byte, ")");
  } catch (const json::exception&) {
    fail("the request body holds a number JSON cannot represent (out of range)");
  }
  K5_CHECK(object.is_object(), "the request body must be a JSON object");
  return object;
}

GenerationOrder order_from(const json& object) {
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

// Removes `key` from `object` and returns its value (nullopt when absent).
std::optional<json> take(json& object, const char* key) {
  const auto found = object.find(key);
  if (found == object.end()) return std::nullopt;
  json value = std::move(*found);
  object.erase(found);
  return value;
}

std::string text_field(const json& value, const char* key) {
  K5_CHECK(value.is_string(), "field '", key, "' must be a string");
  return value.get<std::string>();
}

// OpenAI's fields become k5's; what is left goes through order_from with its checks.
ImagesOrder images_order(json object) {
  for (auto member = object.begin(); member != object.end();)  // null is absent, as order_from reads it
    member = member->is_null() ? object.erase(member) : std::next(member);
  ImagesOrder images;
  const auto not_both = [&](const char* openai, const char* k5) {
    K5_CHECK(!object.contains(k5), "give '", openai, "' or '", k5, "', not both");
  };
  if (const auto model = take(object, "model")) {
    not_both("model", "config");
    object["config"] = text_field(*model, "model");
  }
  if (const auto n = take(object, "n")) images.count = int(Fields::whole_number("n", *n, 1, kMaxImagesPerRequest));
  if (const auto format = take(object, "response_format")) {
    const std::string name = text_field(*format, "response_format");
    K5_CHECK(name == "b64_json" || name == "url", "field 'response_format' must be b64_json or url");
    images.urls = name == "url";
  }
  if (const auto size = take(object, "size")) {
    const std::string text = text_field(*size, "size");
    if (text != "auto") {
      not_both("size", "width");
      not_both("size", "height");
      // Exactly digits 'x' digits.
      int width = 0, height = 0;
      const char* const end = text.data() + text.size();
      const auto [width_end, width_error] = std::from_chars(text.data(), end, width);
      bool valid = width_error == std::errc() && width_end != end && *width_end == 'x';
      if (valid) {
        const auto [height_end, height_error] = std::from_chars(width_end + 1, end, height);
        valid = height_error == std::errc() && height_end == end && width > 0 && height > 0;  // no sign either
      }
      K5_CHECK(valid, "field 'size' must be WIDTHxHEIGHT (say 1024x1024) or auto");
      object["width"] = width;
      object["height"] = height;
    }
  }
  // OpenAI's quality is a word ("hd", "high"...); a number is k5's JPEG / WebP quality.
  if (const auto quality = object.find("quality"); quality != object.end() && quality->is_string())
    object.erase(quality);
  for (const char* ignored : {"style", "user", "background", "moderation", "input_fidelity", "partial_images"})
    take(object, ignored);
  if (const auto stream = take(object, "stream"))
    K5_CHECK(*stream == false, "streamed answers (field 'stream') are not supported: the images come when made");
  if (const auto format = take(object, "output_format")) {
    not_both("output_format", "format");
    const std::string name = text_field(*format, "output_format");
    K5_CHECK(name == "png" || name == "jpeg" || name == "webp", "field 'output_format' must be png, jpeg or webp");
    object["format"] = name;
  }
  if (const auto compression = take(object, "output_compression")) {
    not_both("output_compression", "quality");
    object["quality"] = std::max<int64_t>(1, Fields::whole_number("output_compression", *compression, 0, 100));
  }
  images.order = order_from(object);
  return images;
}

}  // namespace

GenerationOrder parse_generation_order(const std::string& body) { return order_from(parse_body(body)); }

ImagesOrder parse_images_order(const std::string& body) { return images_order(parse_body(body)); }

ImagesOrder parse_images_form(const std::vector<std::pair<std::string, std::string>>& fields) {
  // k5's numbers and switches, and OpenAI's numbers; every other field is text.
  static const std::set<std::string> numbers{
      "n",    "output_compression", "width",           "height", "duration", "frames", "steps",
      "seed", "cfg_scale",          "scheduler_scale", "crf"};
  static const std::set<std::string> switches{"magcache", "text_only_edit", "expand_prompt", "stream"};
  json object = json::object();
  for (const auto& [key, value] : fields) {
    if (key == "lora" || key == "lora[]") {
      object["lora"].push_back(value);
      continue;
    }
    K5_CHECK(!object.contains(key), "field '", key, "' is given twice");
    if (key == "quality") {  // OpenAI's word, or k5's number
      json number = json::parse(value, nullptr, false);
      object[key] = number.is_number() ? number : json(value);
    } else if (numbers.count(key)) {
      json number = json::parse(value, nullptr, false);
      K5_CHECK(number.is_number(), "field '", key, "' must be a number");
      object[key] = number;
    } else if (switches.count(key)) {
      K5_CHECK(value == "true" || value == "false", "field '", key, "' must be true or false");
      object[key] = value == "true";
    } else {
      object[key] = value;
    }
  }
  return images_order(std::move(object));
}

}  // namespace k5
