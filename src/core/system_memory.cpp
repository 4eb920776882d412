#include "core/system_memory.h"

#include <fstream>
#include <string>

#ifdef K5_WITH_CUDA
#include "backends/cuda/device.h"
#endif

namespace k5 {

int64_t available_memory_bytes(Device device) {
  if (device == Device::CUDA) {
#ifdef K5_WITH_CUDA
    return int64_t(cuda::free_memory());
#else
    return -1;
#endif
  }
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  int64_t kilobytes = 0;
  while (meminfo >> key >> kilobytes >> unit) {
    if (key == "MemAvailable:") return kilobytes * 1024;
  }
  return -1;
}

DeviceMemory device_memory(Device device) {
#ifdef K5_WITH_CUDA
  if (device == Device::CUDA) {
    const cuda::MemoryStats stats = cuda::memory_stats();
    return {int64_t(stats.allocated), int64_t(stats.peak)};
  }
#endif
  (void)device;
  return {};
}

void reset_peak_device_memory(Device device) {
#ifdef K5_WITH_CUDA
  if (device == Device::CUDA) cuda::reset_peak_memory();
#endif
  (void)device;
}

}  // namespace k5
