// Tensor: a typed, strided view of a Storage. Cheap to copy (shares the storage).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/storage.h"

namespace k5 {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_string(const Shape& shape);
Shape contiguous_strides(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  // A view of `storage` starting `offset_bytes` in; strides are in elements.
  Tensor(std::shared_ptr<Storage> storage, DType dtype, Shape shape, Shape strides, size_t offset_bytes = 0);

  // New zero-filled contiguous tensor, on the host unless `device` says otherwise.
  static Tensor empty(DType dtype, Shape shape, Device device = Device::CPU);
  static Tensor zeros(DType dtype, Shape shape) { return empty(dtype, std::move(shape)); }
  // Contiguous view over memory someone else owns (an arena, a mapped file).
  static Tensor wrap(void* data, DType dtype, Shape shape, Device device = Device::CPU,
                     std::shared_ptr<const void> keep_alive = nullptr);
  static Tensor from_f32(const std::vector<float>& values, Shape shape);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::CPU; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int dim() const { return int(shape_.size()); }
  // Size of dimension `axis`; negative counts from the end.
  int64_t size(int axis) const;
  int64_t stride(int axis) const;
  int64_t numel() const { return shape_numel(shape_); }
  size_t bytes() const { return size_t(numel()) * dtype_size(dtype_); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  size_t offset_bytes() const { return offset_; }

  void* raw() const { return static_cast<uint8_t*>(storage_->data()) + offset_; }
  template <typename T>
  T* data() const {
    return static_cast<T*>(raw());
  }

  // Views (share storage). `reshape` needs a contiguous tensor.
  Tensor reshape(Shape shape) const;
  Tensor slice(int axis, int64_t begin, int64_t end) const;
  Tensor select(int axis, int64_t index) const;  // drops the axis
  Tensor permute(const std::vector<int>& order) const;
  Tensor transpose(int axis_a, int axis_b) const;
  Tensor unsqueeze(int axis) const;

  // Copies. `contiguous` returns *this when it already is.
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;
  // A contiguous copy on `device` (same dtype); *this when it is already there. Any strides on either side.
  Tensor to_device(Device device) const;
  // Copies `source` (any dtype/strides, same shape) into this tensor, converting the dtype. Host tensors only.
  void copy_from(const Tensor& source);
  // The values as float32, read back from the device when the tensor lives there.
  std::vector<float> to_f32_vector() const;

  std::string describe() const;  // "BF16 [2, 3]"

 private:
  int normalize_axis(int axis) const;
  std::shared_ptr<Storage> storage_;
  DType dtype_ = DType::F32;
  Shape shape_;
  Shape strides_;
  size_t offset_ = 0;
};

}  // namespace k5
