// Errors: exceptions inside the engine, one clear line at the CLI boundary.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace k5 {

// Every error k5 raises: the message is one line that says what and where (file, tensor, key).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream stream;
  (stream << ... << parts);
  return stream.str();
}

template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  throw Error(concat(parts...));
}

}  // namespace k5

// Checks an invariant of the input (not a programming error): throws k5::Error with the message parts.
#define K5_CHECK(condition, ...)                 \
  do {                                          \
    if (!(condition)) ::k5::fail(__VA_ARGS__);  \
  } while (0)
