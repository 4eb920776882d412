#include "core/storage.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

#ifdef K5_WITH_CUDA
#include "backends/cuda/device.h"
#endif

namespace k5 {

const char* device_name(Device device) { return device == Device::CPU ? "cpu" : "cuda"; }

namespace {

thread_local int64_t host_allocated_by_thread = 0;

class HostStorage final : public Storage {
 public:
  explicit HostStorage(size_t bytes) : Storage(nullptr, bytes, Device::CPU) {
    const size_t rounded = (bytes + 63) / 64 * 64;
    data_ = rounded ? std::aligned_alloc(64, rounded) : nullptr;
    if (rounded && !data_) fail("out of memory allocating ", bytes, " bytes");
    if (data_) std::memset(data_, 0, rounded);
    host_allocated_by_thread += int64_t(bytes);
  }
  ~HostStorage() override {
    std::free(data_);
    host_allocated_by_thread -= int64_t(bytes_);
  }
};

class BorrowedStorage final : public Storage {
 public:
  BorrowedStorage(void* data, size_t bytes, Device device, std::shared_ptr<const void> keep_alive)
      : Storage(data, bytes, device), keep_alive_(std::move(keep_alive)) {}

 private:
  std::shared_ptr<const void> keep_alive_;
};

}  // namespace

std::shared_ptr<Storage> allocate_host(size_t bytes) { return std::make_shared<HostStorage>(bytes); }

int64_t host_allocated_by_this_thread() { return host_allocated_by_thread; }

#ifndef K5_WITH_CUDA
namespace {
[[noreturn]] void no_cuda_backend(const char* what) {
  fail(what, ": this k5 was built without the CUDA backend (configure with -DK5_CUDA=ON on a machine with nvcc)");
}
}  // namespace
#endif

std::shared_ptr<Storage> allocate(Device device, size_t bytes) {
  if (device == Device::CPU) return allocate_host(bytes);
#ifdef K5_WITH_CUDA
  return cuda::allocate_storage(bytes);
#else
  no_cuda_backend("allocating device memory");
#endif
}

void copy_bytes(void* destination, Device destination_device, const void* source, Device source_device, size_t bytes) {
  if (bytes == 0) return;
  if (destination_device == Device::CPU && source_device == Device::CPU) {
    std::memcpy(destination, source, bytes);
    return;
  }
#ifdef K5_WITH_CUDA
  if (destination_device == Device::CPU)
    cuda::copy_device_to_host(destination, source, bytes);
  else if (source_device == Device::CPU)
    cuda::copy_host_to_device(destination, source, bytes);
  else
    cuda::copy_device_to_device(destination, source, bytes);
#else
  no_cuda_backend("copying to or from device memory");
#endif
}

std::shared_ptr<Storage> borrow(void* data, size_t bytes, Device device, std::shared_ptr<const void> keep_alive) {
  return std::make_shared<BorrowedStorage>(data, bytes, device, std::move(keep_alive));
}

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  const int descriptor = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (descriptor < 0) fail(path, ": cannot open: ", std::strerror(errno));
  struct stat status {};
  if (::fstat(descriptor, &status) != 0 || !S_ISREG(status.st_mode)) {
    ::close(descriptor);
    fail(path, ": not a regular file");
  }
  const size_t size = size_t(status.st_size);
  void* address = nullptr;
  if (size > 0) {
    address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, descriptor, 0);
    if (address == MAP_FAILED) {
      const int error = errno;
      ::close(descriptor);
      fail(path, ": cannot map: ", std::strerror(error));
    }
  }
  ::close(descriptor);
  return std::shared_ptr<MappedFile>(new MappedFile(path, static_cast<const uint8_t*>(address), size));
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace k5
