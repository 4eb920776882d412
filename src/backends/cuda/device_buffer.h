// Scratch device memory for one op call, from the stream-ordered pool: no device-wide synchronisation per
// call, unlike cudaMalloc. Freed (in stream order) when it goes out of scope.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "backends/cuda/check.h"

namespace k5::cuda {

class ScratchBuffer {
 public:
  explicit ScratchBuffer(size_t bytes) {
    if (bytes) K5_CUDA_CHECK(cudaMallocAsync(&data_, bytes, cudaStream_t(0)));
  }
  ~ScratchBuffer() {
    if (data_) cudaFreeAsync(data_, cudaStream_t(0));
  }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
};

}  // namespace k5::cuda
