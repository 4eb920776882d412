// safetensors: memory-mapped, zero-copy reading (single files and sharded checkpoints) and atomic writing.
//
// Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [b, e]},
// "__metadata__": {str: str}}, then the data block; offsets are relative to the data block.
// Everything is validated on open: header length bound, JSON, known dtypes, shape x dtype size == byte
// range, ranges inside the file and not overlapping. Errors name the file and the tensor.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/storage.h"
#include "core/tensor.h"

namespace k5 {

struct TensorInfo {
  std::string name;
  DType dtype;
  Shape shape;
  size_t begin = 0;  // byte range within the data block
  size_t end = 0;
};

// One .safetensors file, mapped read-only. Tensors returned by `tensor()` borrow the mapping (no copy) and
// keep it alive.
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);

  const std::string& path() const;
  const std::vector<TensorInfo>& tensors() const { return infos_; }  // in file order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // throws naming file and tensor
  Tensor tensor(const std::string& name) const;            // zero-copy view
  // Paging hints for a tensor's bytes in the mapping (whole pages inside them only): `release_pages` drops
  // them from this process once the tensor has been converted (they stay in the page cache; a later read
  // faults them back), so converting a checkpoint costs the converted copy plus one tensor, not the whole
  // file; `populate_pages` faults them in now (MADV_POPULATE_READ, Linux 5.14+; a no-op before), for a
  // weight used in place that every forward reads whole.
  void release_pages(const std::string& name) const;
  void populate_pages(const std::string& name) const;

 private:
  std::shared_ptr<MappedFile> file_;
  size_t data_start_ = 0;
  std::vector<TensorInfo> infos_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint that may span several files: a single .safetensors file, a `*.safetensors.index.json`
// (weight_map: tensor -> shard file), or a directory holding either (all *.safetensors files in it when
// there is no index).
class Checkpoint {
 public:
  static Checkpoint open(const std::string& path);

  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return owner_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  Tensor tensor(const std::string& name) const;
  void release_pages(const std::string& name) const;  // SafetensorsFile's paging hints
  void populate_pages(const std::string& name) const;
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }
  const std::string& path() const { return path_; }

 private:
  const SafetensorsFile& file_of(const std::string& name) const;  // the file holding it; throws when none does

  std::string path_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> owner_;  // tensor name -> index into files_
};

// Writes tensors (any dtype, any strides; written contiguous) in the given order, atomically.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace k5
