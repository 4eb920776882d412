// The Context the tests run with: 2 threads (the CI machine's cores), quiet logging.
#pragma once

#include "core/context.h"

namespace k5::test {

inline Context make_context(Precision precision, int threads = 2) {
  ContextOptions options;
  options.threads = threads;
  options.precision = precision;
  options.log_level = LogLevel::quiet;
  return Context(options);
}

}  // namespace k5::test
