// Typed access to JSON config fields (Hugging Face config.json files): a missing or ill-typed key is an
// error that names the file and the key.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace k5 {

nlohmann::json read_json_file(const std::string& path);
// The same, keeping the objects' keys in file order.
nlohmann::ordered_json read_ordered_json_file(const std::string& path);

class JsonFields {
 public:
  JsonFields(const nlohmann::json& object, std::string source) : object_(object), source_(std::move(source)) {}
  JsonFields(nlohmann::json&&, std::string) = delete;  // the object is referenced, not copied

  bool has(const std::string& key) const;
  // Required fields.
  int64_t integer(const std::string& key) const;
  double number(const std::string& key) const;
  bool boolean(const std::string& key) const;
  std::string string(const std::string& key) const;
  std::vector<int64_t> integers(const std::string& key) const;
  std::vector<double> numbers(const std::string& key) const;
  std::vector<std::string> strings(const std::string& key) const;
  JsonFields object(const std::string& key) const;
  // Optional fields: the fallback when absent (or null); still an error when present with the wrong type.
  int64_t integer(const std::string& key, int64_t fallback) const;
  double number(const std::string& key, double fallback) const;
  bool boolean(const std::string& key, bool fallback) const;
  std::string string(const std::string& key, const std::string& fallback) const;

  const nlohmann::json& json() const { return object_; }
  const std::string& source() const { return source_; }

 private:
  const nlohmann::json& at(const std::string& key) const;
  const nlohmann::json& object_;
  std::string source_;  // "path/config.json" or "path/config.json: vision_config"
};

}  // namespace k5
