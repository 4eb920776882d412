// Output files appear whole or not at all: data goes to a temporary name beside the target, then rename.
#pragma once

#include <functional>
#include <string>

namespace k5 {

// Calls write(temporary_path) and renames the result to `path`. If write throws, the temporary file is
// removed and the exception propagates; `path` is untouched.
void write_atomically(const std::string& path, const std::function<void(const std::string& temporary_path)>& write);

}  // namespace k5
