#include "io/json_fields.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"

namespace k5 {

namespace {

template <typename Json>
Json parse_json_file(const std::string& path) {
  std::FILE* stream = std::fopen(path.c_str(), "rb");
  K5_CHECK(stream, path, ": cannot open: ", std::strerror(errno));
  std::string text;
  char buffer[65536];
  size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, stream)) > 0) text.append(buffer, got);
  const bool failed = std::ferror(stream) != 0;
  std::fclose(stream);
  K5_CHECK(!failed, path, ": read error");
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::exception& error) {
    fail(path, ": not valid JSON (", error.what(), ")");
  }
}

}  // namespace

nlohmann::json read_json_file(const std::string& path) { return parse_json_file<nlohmann::json>(path); }

nlohmann::ordered_json read_ordered_json_file(const std::string& path) {
  return parse_json_file<nlohmann::ordered_json>(path);
}

namespace {

[[noreturn]] void wrong_type(const std::string& source, const std::string& key, const char* expected,
                             const nlohmann::json& found) {
  std::string shown = found.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (shown.size() > 60) shown = shown.substr(0, 57) + "...";
  fail(source, ": key '", key, "' must be ", expected, ", found ", found.type_name(), " ", shown);
}

bool fits_int64(const nlohmann::json& value) {
  return value.is_number_integer() && (!value.is_number_unsigned() || value.get<uint64_t>() <= uint64_t(INT64_MAX));
}

}  // namespace

bool JsonFields::has(const std::string& key) const {
  return object_.is_object() && object_.contains(key) && !object_[key].is_null();
}

const nlohmann::json& JsonFields::at(const std::string& key) const {
  K5_CHECK(object_.is_object(), source_, ": expected a JSON object, found ", object_.type_name());
  const auto found = object_.find(key);
  K5_CHECK(found != object_.end() && !found->is_null(), source_, ": missing key '", key, "'");
  return *found;
}

int64_t JsonFields::integer(const std::string& key) const {
  const auto& value = at(key);
  if (!fits_int64(value)) wrong_type(source_, key, "an integer", value);
  return value.get<int64_t>();
}

double JsonFields::number(const std::string& key) const {
  const auto& value = at(key);
  if (!value.is_number()) wrong_type(source_, key, "a number", value);
  return value.get<double>();
}

bool JsonFields::boolean(const std::string& key) const {
  const auto& value = at(key);
  if (!value.is_boolean()) wrong_type(source_, key, "a boolean", value);
  return value.get<bool>();
}

std::string JsonFields::string(const std::string& key) const {
  const auto& value = at(key);
  if (!value.is_string()) wrong_type(source_, key, "a string", value);
  return value.get<std::string>();
}

std::vector<int64_t> JsonFields::integers(const std::string& key) const {
  const auto& value = at(key);
  if (!value.is_array()) wrong_type(source_, key, "an array of integers", value);
  std::vector<int64_t> result;
  for (const auto& item : value) {
    if (!fits_int64(item)) wrong_type(source_, key, "an array of integers", value);
    result.push_back(item.get<int64_t>());
  }
  return result;
}

std::vector<double> JsonFields::numbers(const std::string& key) const {
  const auto& value = at(key);
  if (!value.is_array()) wrong_type(source_, key, "an array of numbers", value);
  std::vector<double> result;
  for (const auto& item : value) {
    if (!item.is_number()) wrong_type(source_, key, "an array of numbers", value);
    result.push_back(item.get<double>());
  }
  return result;
}

std::vector<std::string> JsonFields::strings(const std::string& key) const {
  const auto& value = at(key);
  if (!value.is_array()) wrong_type(source_, key, "an array of strings", value);
  std::vector<std::string> result;
  for (const auto& item : value) {
    if (!item.is_string()) wrong_type(source_, key, "an array of strings", value);
    result.push_back(item.get<std::string>());
  }
  return result;
}

JsonFields JsonFields::object(const std::string& key) const {
  const auto& value = at(key);
  if (!value.is_object()) wrong_type(source_, key, "an object", value);
  // "config.json" -> "config.json: vision_config" -> "config.json: vision_config.rope_scaling"
  const bool nested = source_.find(": ") != std::string::npos;
  return JsonFields(value, source_ + (nested ? "." : ": ") + key);
}

int64_t JsonFields::integer(const std::string& key, int64_t fallback) const {
  return has(key) ? integer(key) : fallback;
}

double JsonFields::number(const std::string& key, double fallback) const { return has(key) ? number(key) : fallback; }

bool JsonFields::boolean(const std::string& key, bool fallback) const { return has(key) ? boolean(key) : fallback; }

std::string JsonFields::string(const std::string& key, const std::string& fallback) const {
  return has(key) ? string(key) : fallback;
}

}  // namespace k5
