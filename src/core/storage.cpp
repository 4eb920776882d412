#include "core/storage.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace k5 {

const char* device_name(Device device) { return device == Device::CPU ? "cpu" : "cuda"; }

namespace {

class HostStorage final : public Storage {
 public:
  explicit HostStorage(size_t bytes) : Storage(nullptr, bytes, Device::CPU) {
    const size_t rounded = (bytes + 63) / 64 * 64;
    data_ = rounded ? std::aligned_alloc(64, rounded) : nullptr;
    if (rounded && !data_) fail("out of memory allocating ", bytes, " bytes");
    if (data_) std::memset(data_, 0, rounded);
  }
  ~HostStorage() override { std::free(data_); }
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
