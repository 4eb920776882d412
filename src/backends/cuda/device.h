// The CUDA runtime as the rest of k5 sees it: is there a device, device memory behind a Storage, and copies
// between host and device. Plain C++ (no CUDA headers), so core code can call it in a CUDA build.
#pragma once

#include <cstddef>
#include <memory>

#include "core/storage.h"

namespace k5::cuda {

// Number of usable CUDA devices; 0 when there is no driver, no device, or any other CUDA error (so callers
// and tests can ask without a GPU present).
int device_count();
// The current device's compute capability as 10 major + minor (90 for an H100), 0 without a device.
int compute_capability();
// The most dynamic shared memory one block of the current device may opt in to (asked once).
size_t shared_memory_per_block();

// Zero-filled device memory on the current device, given back to the pool when the last tensor lets go.
std::shared_ptr<Storage> allocate_storage(size_t bytes);

// Raw device memory from the same pool, ordered on the default stream like every k5 kernel (so a release
// while kernels that use it are queued is safe), counted in memory_stats(). Out of memory is a one-line error.
void* allocate(size_t bytes);
void release(void* data, size_t bytes);

// Synchronous copies of `bytes` bytes (they wait for the kernels queued before them).
void copy_host_to_device(void* device_destination, const void* host_source, size_t bytes);
void copy_device_to_host(void* host_destination, const void* device_source, size_t bytes);
void copy_device_to_device(void* device_destination, const void* device_source, size_t bytes);

// Waits for every queued kernel; reports an error a kernel raised asynchronously.
void synchronize();

// Free device memory after handing the pool's cached memory back to the driver.
size_t free_memory();
// The device's memory.
size_t total_memory();
// Waits for the queued kernels and gives the pool's unused memory back to the driver (before asking how much
// is free, and when an allocation fails).
void release_cached_memory();

// The bytes k5 holds on the device (tensors, workspaces, scratch) now, and the most since the last reset.
struct MemoryStats {
  size_t allocated = 0;
  size_t peak = 0;
};
MemoryStats memory_stats();
void reset_peak_memory();
// What this thread has allocated minus what it has released (a model's load, measured on its own).
int64_t allocated_by_this_thread();

}  // namespace k5::cuda
