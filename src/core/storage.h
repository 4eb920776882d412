// Memory behind tensors: owned (aligned heap), memory-mapped file, or borrowed (arena, caller's buffer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace k5 {

enum class Device : uint8_t { CPU, CUDA };
const char* device_name(Device device);

class Storage {
 public:
  virtual ~Storage() = default;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 protected:
  Storage(void* data, size_t bytes, Device device) : data_(data), bytes_(bytes), device_(device) {}
  void* data_;
  size_t bytes_;
  Device device_;
};

// 64-byte aligned host memory, zero-filled.
std::shared_ptr<Storage> allocate_host(size_t bytes);
// What allocate_host gave this thread minus what this thread has released (a model's load, measured on its own;
// memory-mapped files and other heap memory are not counted).
int64_t host_allocated_by_this_thread();
// Zero-filled memory on `device`: host memory for CPU, device memory for CUDA (a CUDA build with a device;
// otherwise a one-line error saying which is missing).
std::shared_ptr<Storage> allocate(Device device, size_t bytes);
// Copies `bytes` bytes between any two devices; waits until the copy is done.
void copy_bytes(void* destination, Device destination_device, const void* source, Device source_device, size_t bytes);
// Somebody else's memory (an arena, a mapped region, a caller's buffer); `keep_alive` holds its owner.
std::shared_ptr<Storage> borrow(void* data, size_t bytes, Device device = Device::CPU,
                                std::shared_ptr<const void> keep_alive = nullptr);

// A whole file mapped read-only. Pages are loaded on first touch and shared with the page cache, so a
// checkpoint's weights cost no private memory.
class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size) : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_;
  size_t size_;
};

}  // namespace k5
