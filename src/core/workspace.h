// Workspace: a bump arena for the activations of one forward pass, so ops do not allocate per call. Each
// device has its own (Context::workspace(device)); a CUDA workspace hands out device memory.
//
// Typical use: `auto scope = workspace.scope();` at the top of a block's forward, then
// `workspace.tensor(DType::F32, {tokens, dim})` for temporaries; everything allocated after the scope was
// opened is released when it ends. Memory grows in chunks and is kept for the next pass.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace k5 {

class Workspace {
 public:
  class Scope {
   public:
    ~Scope() { workspace_->release_to(mark_chunk_, mark_used_); }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    friend class Workspace;
    Scope(Workspace* workspace, size_t chunk, size_t used) : workspace_(workspace), mark_chunk_(chunk), mark_used_(used) {}
    Workspace* workspace_;
    size_t mark_chunk_;
    size_t mark_used_;
  };

  explicit Workspace(size_t initial_bytes = 0, Device device = Device::CPU);

  Scope scope() { return Scope(this, current_, chunks_.empty() ? 0 : chunks_[current_].used); }
  // 64-byte aligned, uninitialised memory valid until the enclosing scope ends.
  void* allocate(size_t bytes);
  // A contiguous tensor in the arena (contents undefined), on the workspace's device.
  Tensor tensor(DType dtype, Shape shape);

  // Gives the chunks back (to the heap, or the device's pool) when no scope holds any memory; else does nothing.
  void trim();

  Device device() const { return device_; }
  size_t capacity() const;
  size_t peak() const { return peak_; }

 private:
  struct Chunk {
    std::shared_ptr<uint8_t> memory;
    size_t size = 0;
    size_t used = 0;
  };
  Chunk new_chunk(size_t bytes) const;
  void release_to(size_t chunk, size_t used);
  Device device_;
  std::vector<Chunk> chunks_;
  size_t current_ = 0;
  size_t in_use_ = 0;
  size_t peak_ = 0;
};

}  // namespace k5
