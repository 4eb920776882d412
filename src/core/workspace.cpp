#include "core/workspace.h"

#include <algorithm>
#include <cstdlib>

#include "core/error.h"

namespace k5 {

namespace {
constexpr size_t kAlignment = 64;
size_t align_up(size_t value) { return (value + kAlignment - 1) / kAlignment * kAlignment; }
}  // namespace

Workspace::Workspace(size_t initial_bytes, Device device) : device_(device) {
  if (initial_bytes) chunks_.push_back(new_chunk(initial_bytes));
}

// Host chunks are left untouched (pages are committed as the arena reaches them); device chunks come from
// the backend's allocator.
Workspace::Chunk Workspace::new_chunk(size_t bytes) const {
  Chunk chunk;
  chunk.size = align_up(bytes);
  if (device_ == Device::CPU) {
    auto* memory = static_cast<uint8_t*>(std::aligned_alloc(kAlignment, chunk.size));
    if (!memory) fail("workspace: out of memory allocating ", bytes, " bytes");
    chunk.memory = std::shared_ptr<uint8_t>(memory, std::free);
  } else {
    std::shared_ptr<Storage> storage = k5::allocate(device_, chunk.size);
    chunk.memory = std::shared_ptr<uint8_t>(storage, static_cast<uint8_t*>(storage->data()));
  }
  return chunk;
}

void* Workspace::allocate(size_t bytes) {
  bytes = align_up(std::max<size_t>(bytes, 1));
  while (current_ < chunks_.size()) {
    Chunk& chunk = chunks_[current_];
    if (chunk.size - chunk.used >= bytes) {
      void* pointer = chunk.memory.get() + chunk.used;
      chunk.used += bytes;
      in_use_ += bytes;
      peak_ = std::max(peak_, in_use_);
      return pointer;
    }
    if (current_ + 1 == chunks_.size()) break;
    ++current_;
  }
  // Grow geometrically so a pass settles into a few chunks after its first run.
  chunks_.push_back(new_chunk(std::max(bytes, capacity() + (size_t(64) << 20))));
  current_ = chunks_.size() - 1;
  return allocate(bytes);
}

Tensor Workspace::tensor(DType dtype, Shape shape) {
  const size_t bytes = size_t(shape_numel(shape)) * dtype_size(dtype);
  return Tensor::wrap(allocate(bytes), dtype, std::move(shape), device_);
}

size_t Workspace::capacity() const {
  size_t total = 0;
  for (const auto& chunk : chunks_) total += chunk.size;
  return total;
}

void Workspace::trim() {
  if (in_use_ != 0) return;
  chunks_.clear();
  current_ = 0;
}

void Workspace::release_to(size_t chunk, size_t used) {
  for (size_t i = chunk + 1; i < chunks_.size(); ++i) {
    in_use_ -= chunks_[i].used;
    chunks_[i].used = 0;
  }
  if (chunk < chunks_.size()) {
    in_use_ -= chunks_[chunk].used - used;
    chunks_[chunk].used = used;
  }
  current_ = chunk;
}

}  // namespace k5
