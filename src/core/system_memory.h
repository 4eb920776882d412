// What the machine's memory allows, for choices that trade speed for memory (the VAE's frame-by-frame decode).
#pragma once

#include <cstdint>

#include "core/storage.h"

namespace k5 {

// On the CPU: MemAvailable from /proc/meminfo (what can be allocated without swapping), or -1 when unknown.
// On the GPU: its free memory once k5's pool has given back what it keeps unused.
int64_t available_memory_bytes(Device device = Device::CPU);
// On the CPU: the RAM k5 may use (MemTotal, or a container's lower cgroup limit); on the GPU: its memory. -1 when
// unknown.
int64_t total_memory_bytes(Device device = Device::CPU);
// On the GPU: hands the memory k5's pool keeps unused back to the driver (for other programs); nothing on the CPU.
void release_cached_memory(Device device);

// The device memory k5 holds (tensors, workspaces, scratch): now, and the most since the last reset. Zero on
// the CPU, whose peak is the process's RSS.
struct DeviceMemory {
  int64_t allocated = 0;
  int64_t peak = 0;
};
DeviceMemory device_memory(Device device);
// The bytes this thread holds on `device` beyond what it has released: the change over a model's load is what the
// model holds, whatever other threads do meanwhile (allocations in the thread pool's workers are not counted).
int64_t thread_allocated_bytes(Device device);
void reset_peak_device_memory(Device device);

}  // namespace k5
