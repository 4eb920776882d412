// Logging to stderr, with a level owned by the Context.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include "core/error.h"

namespace k5 {

enum class LogLevel { quiet = 0, info = 1, debug = 2 };

class Logger {
 public:
  explicit Logger(LogLevel level = LogLevel::info) : level_(level) {}
  LogLevel level() const { return level_; }
  void set_level(LogLevel level) { level_ = level; }
  bool enabled(LogLevel level) const { return level <= level_; }

  template <typename... Parts>
  void info(const Parts&... parts) const {
    if (enabled(LogLevel::info)) write("", concat(parts...));
  }
  template <typename... Parts>
  void warn(const Parts&... parts) const {
    if (enabled(LogLevel::info)) write("warning: ", concat(parts...));
  }
  template <typename... Parts>
  void debug(const Parts&... parts) const {
    if (enabled(LogLevel::debug)) write("debug: ", concat(parts...));
  }

 private:
  static void write(const char* prefix, const std::string& line) { std::fprintf(stderr, "%s%s\n", prefix, line.c_str()); }
  LogLevel level_;
};

// For log lines: the seconds from `start` to now.
inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace k5
