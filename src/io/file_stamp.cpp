#include "io/file_stamp.h"

#include <sys/stat.h>

#include "core/error.h"

namespace k5 {

std::string file_stamp(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return "";
  return concat(path, " ", int64_t(info.st_size), " ", uint64_t(info.st_ino), " ", int64_t(info.st_mtim.tv_sec), ".",
                int64_t(info.st_mtim.tv_nsec), " ", int64_t(info.st_ctim.tv_sec), ".", int64_t(info.st_ctim.tv_nsec));
}

}  // namespace k5
