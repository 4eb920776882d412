#include "backends/cuda/device.h"

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>

#include "backends/cuda/check.h"

namespace k5::cuda {

namespace {

std::atomic<size_t> allocated_bytes{0};
std::atomic<size_t> peak_bytes{0};
thread_local int64_t allocated_by_thread = 0;

void count_allocation(size_t bytes) {
  allocated_by_thread += int64_t(bytes);
  const size_t now = allocated_bytes += bytes;
  size_t peak = peak_bytes.load();
  while (now > peak && !peak_bytes.compare_exchange_weak(peak, now)) {
  }
}

// The device's stream-ordered pool, told to keep what is freed (cudaMalloc/cudaFree per tensor would
// synchronise the device on every call and give memory back to the driver each time).
cudaMemPool_t memory_pool() {
  static const cudaMemPool_t pool = [] {
    int device = 0;
    K5_CUDA_CHECK(cudaGetDevice(&device));
    cudaMemPool_t p = nullptr;
    K5_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&p, device));
    uint64_t keep = UINT64_MAX;
    K5_CUDA_CHECK(cudaMemPoolSetAttribute(p, cudaMemPoolAttrReleaseThreshold, &keep));
    return p;
  }();
  return pool;
}

}  // namespace

void* allocate(size_t bytes) {
  if (bytes == 0) return nullptr;
  cudaMemPool_t pool = memory_pool();
  void* data = nullptr;
  cudaError_t status = cudaMallocFromPoolAsync(&data, bytes, pool, cudaStream_t(0));
  if (status == cudaErrorMemoryAllocation) {
    // What the pool keeps may be free but in the wrong pieces: hand it back to the driver and try once more.
    cudaGetLastError();
    release_cached_memory();
    status = cudaMallocFromPoolAsync(&data, bytes, pool, cudaStream_t(0));
  }
  K5_CHECK(status != cudaErrorMemoryAllocation, "cuda: out of GPU memory allocating ", bytes, " bytes (",
           allocated_bytes.load(), " bytes held by k5)");
  K5_CUDA_CHECK(status);
  count_allocation(bytes);
  return data;
}

void release(void* data, size_t bytes) {
  if (!data) return;
  cudaFreeAsync(data, cudaStream_t(0));  // no throwing: this runs in destructors
  allocated_bytes -= bytes;
  allocated_by_thread -= int64_t(bytes);
}

namespace {

class DeviceStorage final : public Storage {
 public:
  explicit DeviceStorage(size_t bytes) : Storage(allocate(bytes), bytes, Device::CUDA) {
    if (bytes == 0) return;
    const cudaError_t status = cudaMemsetAsync(data_, 0, bytes, cudaStream_t(0));
    if (status != cudaSuccess) {
      release(data_, bytes);
      K5_CUDA_CHECK(status);
    }
  }
  ~DeviceStorage() override { release(data_, bytes_); }
};

}  // namespace

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clears the sticky "no driver" error so later calls report their own
    return 0;
  }
  return count;
}

int compute_capability() {
  if (device_count() == 0) return 0;
  int device = 0, major = 0, minor = 0;
  K5_CUDA_CHECK(cudaGetDevice(&device));
  K5_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  K5_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return 10 * major + minor;
}

size_t shared_memory_per_block() {
  static const size_t bytes = [] {
    int device = 0, value = 0;
    K5_CUDA_CHECK(cudaGetDevice(&device));
    K5_CUDA_CHECK(cudaDeviceGetAttribute(&value, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    return size_t(value);
  }();
  return bytes;
}

std::shared_ptr<Storage> allocate_storage(size_t bytes) {
  K5_CHECK(device_count() > 0, "cuda: no CUDA device available (allocating ", bytes, " bytes)");
  return std::make_shared<DeviceStorage>(bytes);
}

void copy_host_to_device(void* device_destination, const void* host_source, size_t bytes) {
  if (bytes) K5_CUDA_CHECK(cudaMemcpy(device_destination, host_source, bytes, cudaMemcpyHostToDevice));
}

void copy_device_to_host(void* host_destination, const void* device_source, size_t bytes) {
  if (bytes) K5_CUDA_CHECK(cudaMemcpy(host_destination, device_source, bytes, cudaMemcpyDeviceToHost));
}

void copy_device_to_device(void* device_destination, const void* device_source, size_t bytes) {
  if (bytes) K5_CUDA_CHECK(cudaMemcpy(device_destination, device_source, bytes, cudaMemcpyDeviceToDevice));
}

void synchronize() { K5_CUDA_CHECK(cudaDeviceSynchronize()); }

size_t free_memory() {
  release_cached_memory();
  size_t free = 0, total = 0;
  K5_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return free;
}

size_t total_memory() {
  size_t free = 0, total = 0;
  K5_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return total;
}

void release_cached_memory() {
  K5_CUDA_CHECK(cudaDeviceSynchronize());
  K5_CUDA_CHECK(cudaMemPoolTrimTo(memory_pool(), 0));
}

MemoryStats memory_stats() { return {allocated_bytes.load(), peak_bytes.load()}; }

int64_t allocated_by_this_thread() { return allocated_by_thread; }

void reset_peak_memory() { peak_bytes = allocated_bytes.load(); }

}  // namespace k5::cuda
