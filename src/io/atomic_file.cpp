#include "io/atomic_file.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace k5 {

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  K5_CHECK(!target.filename().empty(), path, ": not a file name");
  const fs::path directory = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code error;
  K5_CHECK(fs::is_directory(directory, error), path, ": directory ", directory.string(), " does not exist");
  std::string hidden_name = ".";
  hidden_name.append(target.filename().string()).append(".k5tmp.").append(std::to_string(::getpid()));
  const std::string temporary = (directory / hidden_name).string();
  try {
    write(temporary);
  } catch (...) {
    std::remove(temporary.c_str());
    throw;
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int saved = errno;
    std::remove(temporary.c_str());
    fail(path, ": cannot write: ", std::strerror(saved));
  }
}

}  // namespace k5
