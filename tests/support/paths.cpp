#include <cstdlib>

#include "support/compare.h"

namespace k5::test {

std::string shared_path(const std::string& relative) {
  const char* configured = std::getenv("K5_SHARED_DIR");
  const std::string root = configured ? configured : std::string(K5_SOURCE_DIR) + "/../shared";
  return root + "/" + relative;
}

}  // namespace k5::test
