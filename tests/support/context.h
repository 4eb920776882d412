// The Context the tests run with: 2 threads (the CI machine's cores), quiet logging.
#pragma once

#include "core/context.h"
#ifdef K5_WITH_CUDA
#include "backends/cuda/device.h"
#endif

namespace k5::test {

// On Device::CUDA for the GPU tests (a CUDA context needs a device: they make it after their device check).
inline ContextOptions context_options(Precision precision, Device device = Device::CPU) {
  ContextOptions options;
  options.threads = 2;
  options.device = device;
  options.precision = precision;
  options.log_level = LogLevel::quiet;
  return options;
}

inline Context make_context(Precision precision, Device device = Device::CPU) {
  return Context(context_options(precision, device));
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
