// The Context the tests run with: 2 threads (the CI machine's cores), quiet logging.
#pragma once

#include "core/context.h"
#ifdef K5_WITH_CUDA
#include "backends/cuda/device.h"
#endif

namespace k5::test {

inline Context make_context(Precision precision, int threads = 2) {
  ContextOptions options;
  options.threads = threads;
  options.precision = precision;
  options.log_level = LogLevel::quiet;
  return Context(options);
}

// Whether a CUDA device answers (never in a build without the CUDA backend).
inline bool gpu_available() {
#ifdef K5_WITH_CUDA
  return cuda::device_count() > 0;
#else
  return false;
#endif
}

}  // namespace k5::test
