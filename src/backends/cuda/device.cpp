#include "backends/cuda/device.h"

#include <cuda_runtime_api.h>

#include "backends/cuda/check.h"

namespace k5::cuda {

namespace {

class DeviceStorage final : public Storage {
 public:
  explicit DeviceStorage(size_t bytes) : Storage(nullptr, bytes, Device::CUDA) {
    if (bytes == 0) return;
    K5_CUDA_CHECK(cudaMalloc(&data_, bytes));
    const cudaError_t status = cudaMemset(data_, 0, bytes);
    if (status != cudaSuccess) {
      cudaFree(data_);
      K5_CUDA_CHECK(status);
    }
  }
  // No throwing from a destructor: a failed free (the context already torn down at exit) is ignored.
  ~DeviceStorage() override {
    if (data_) cudaFree(data_);
  }
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

size_t memory_in_use() {
  size_t free = 0, total = 0;
  K5_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return total - free;
}

}  // namespace k5::cuda
