// Scratch device memory for one op call, from the stream-ordered pool: no device-wide synchronisation per
// call, unlike cudaMalloc. Freed (in stream order) when it goes out of scope.
#pragma once

#include <cstddef>

#include "backends/cuda/device.h"

namespace k5::cuda {

class ScratchBuffer {
 public:
  explicit ScratchBuffer(size_t bytes) : data_(allocate(bytes)), bytes_(bytes) {}
  ~ScratchBuffer() { release(data_, bytes_); }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace k5::cuda
