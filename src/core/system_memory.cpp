#include "core/system_memory.h"

#include <fstream>
#include <string>

#ifdef K5_WITH_CUDA
#include "backends/cuda/device.h"
#endif

namespace k5 {

namespace {

int64_t meminfo_bytes(const std::string& wanted) {
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  int64_t kilobytes = 0;
  while (meminfo >> key >> kilobytes >> unit) {
    if (key == wanted) return kilobytes * 1024;
  }
  return -1;
}

// The memory limit of this process's control group (a container's), or -1 when none: cgroup v2's memory.max, else
// v1's memory.limit_in_bytes (a huge number when unlimited).
int64_t cgroup_memory_limit() {
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream file(path);
    int64_t limit = 0;
    if (file >> limit && limit > 0 && limit < (int64_t(1) << 60)) return limit;
  }
  return -1;
}

}  // namespace

int64_t available_memory_bytes(Device device) {
  if (device == Device::CUDA) {
#ifdef K5_WITH_CUDA
    return int64_t(cuda::free_memory());
#else
    return -1;
#endif
  }
  return meminfo_bytes("MemAvailable:");
}

int64_t total_memory_bytes(Device device) {
  if (device == Device::CUDA) {
#ifdef K5_WITH_CUDA
    return int64_t(cuda::total_memory());
#else
    return -1;
#endif
  }
  const int64_t total = meminfo_bytes("MemTotal:"), limit = cgroup_memory_limit();
  return limit > 0 && (total < 0 || limit < total) ? limit : total;
}

void release_cached_memory(Device device) {
#ifdef K5_WITH_CUDA
  if (device == Device::CUDA) cuda::release_cached_memory();
#else
  (void)device;
#endif
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

int64_t thread_allocated_bytes(Device device) {
#ifdef K5_WITH_CUDA
  if (device == Device::CUDA) return cuda::allocated_by_this_thread();
#endif
  return device == Device::CPU ? host_allocated_by_this_thread() : 0;
}

void reset_peak_device_memory(Device device) {
#ifdef K5_WITH_CUDA
  if (device == Device::CUDA) cuda::reset_peak_memory();
#endif
  (void)device;
}

}  // namespace k5
