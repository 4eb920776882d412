#include "core/tensor.h"

#include <algorithm>
#include <cstring>
#include <sstream>

namespace k5 {

int64_t shape_numel(const Shape& shape) {
  int64_t count = 1;
  for (int64_t extent : shape) count *= extent;
  return count;
}

std::string shape_string(const Shape& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

Tensor::Tensor(std::shared_ptr<Storage> storage, DType dtype, Shape shape, Shape strides, size_t offset_bytes)
    : storage_(std::move(storage)), dtype_(dtype), shape_(std::move(shape)), strides_(std::move(strides)),
      offset_(offset_bytes) {
  K5_CHECK(shape_.size() == strides_.size(), "tensor: shape ", shape_string(shape_), " and strides ",
           shape_string(strides_), " differ in rank");
  for (int64_t extent : shape_) K5_CHECK(extent >= 0, "tensor: negative extent in ", shape_string(shape_));
}

Tensor Tensor::empty(DType dtype, Shape shape, Device device) {
  for (int64_t extent : shape) K5_CHECK(extent >= 0, "tensor: negative extent in ", shape_string(shape));
  auto storage = allocate(device, size_t(shape_numel(shape)) * dtype_size(dtype));
  Shape strides = contiguous_strides(shape);
  return Tensor(std::move(storage), dtype, std::move(shape), std::move(strides));
}

Tensor Tensor::wrap(void* data, DType dtype, Shape shape, Device device, std::shared_ptr<const void> keep_alive) {
  const size_t bytes = size_t(shape_numel(shape)) * dtype_size(dtype);
  Shape strides = contiguous_strides(shape);
  return Tensor(borrow(data, bytes, device, std::move(keep_alive)), dtype, std::move(shape), std::move(strides));
}

Tensor Tensor::from_f32(const std::vector<float>& values, Shape shape) {
  K5_CHECK(int64_t(values.size()) == shape_numel(shape), "tensor: ", values.size(), " values for shape ",
           shape_string(shape));
  Tensor tensor = empty(DType::F32, std::move(shape));
  std::memcpy(tensor.raw(), values.data(), values.size() * sizeof(float));
  return tensor;
}

int Tensor::normalize_axis(int axis) const {
  const int rank = dim();
  const int normalized = axis < 0 ? axis + rank : axis;
  K5_CHECK(normalized >= 0 && normalized < rank, "tensor: axis ", axis, " out of range for ", describe());
  return normalized;
}

int64_t Tensor::size(int axis) const { return shape_[normalize_axis(axis)]; }
int64_t Tensor::stride(int axis) const { return strides_[normalize_axis(axis)]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] != 1 && strides_[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

Tensor Tensor::reshape(Shape shape) const {
  int inferred = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      K5_CHECK(inferred < 0, "reshape: more than one -1 in ", shape_string(shape));
      inferred = int(i);
    } else {
      known *= shape[i];
    }
  }
  if (inferred >= 0) {
    K5_CHECK(known > 0 && numel() % known == 0, "reshape: cannot view ", describe(), " as ", shape_string(shape));
    shape[inferred] = numel() / known;
  }
  K5_CHECK(shape_numel(shape) == numel(), "reshape: cannot view ", describe(), " as ", shape_string(shape));
  K5_CHECK(is_contiguous(), "reshape: tensor ", describe(), " is not contiguous");
  Shape strides = contiguous_strides(shape);
  return Tensor(storage_, dtype_, std::move(shape), std::move(strides), offset_);
}

Tensor Tensor::slice(int axis, int64_t begin, int64_t end) const {
  axis = normalize_axis(axis);
  K5_CHECK(0 <= begin && begin <= end && end <= shape_[axis], "slice: [", begin, ", ", end, ") out of range for axis ",
           axis, " of ", describe());
  Shape shape = shape_;
  shape[axis] = end - begin;
  return Tensor(storage_, dtype_, std::move(shape), strides_,
                offset_ + size_t(begin * strides_[axis]) * dtype_size(dtype_));
}

Tensor Tensor::select(int axis, int64_t index) const {
  axis = normalize_axis(axis);
  Tensor one = slice(axis, index, index + 1);
  one.shape_.erase(one.shape_.begin() + axis);
  one.strides_.erase(one.strides_.begin() + axis);
  return one;
}

Tensor Tensor::permute(const std::vector<int>& order) const {
  K5_CHECK(int(order.size()) == dim(), "permute: order of rank ", order.size(), " for ", describe());
  Shape shape(order.size()), strides(order.size());
  std::vector<bool> seen(order.size(), false);
  for (size_t i = 0; i < order.size(); ++i) {
    const int axis = normalize_axis(order[i]);
    K5_CHECK(!seen[axis], "permute: axis ", axis, " repeated");
    seen[axis] = true;
    shape[i] = shape_[axis];
    strides[i] = strides_[axis];
  }
  return Tensor(storage_, dtype_, std::move(shape), std::move(strides), offset_);
}

Tensor Tensor::transpose(int axis_a, int axis_b) const {
  std::vector<int> order(dim());
  for (int i = 0; i < dim(); ++i) order[i] = i;
  std::swap(order[normalize_axis(axis_a)], order[normalize_axis(axis_b)]);
  return permute(order);
}

Tensor Tensor::unsqueeze(int axis) const {
  const int rank = dim();
  if (axis < 0) axis += rank + 1;
  K5_CHECK(axis >= 0 && axis <= rank, "unsqueeze: axis out of range for ", describe());
  Shape shape = shape_, strides = strides_;
  const int64_t stride = axis < rank ? strides_[axis] * shape_[axis] : 1;
  shape.insert(shape.begin() + axis, 1);
  strides.insert(strides.begin() + axis, stride);
  return Tensor(storage_, dtype_, std::move(shape), std::move(strides), offset_);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  if (device() != Device::CPU) {
    K5_CHECK(is_contiguous(), "clone: a strided view on ", device_name(device()), " (", describe(), ")");
    Tensor copy = empty(dtype_, shape_, device());
    copy_bytes(copy.raw(), device(), raw(), device(), bytes());
    return copy;
  }
  Tensor copy = empty(dtype_, shape_);
  copy.copy_from(*this);
  return copy;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor copy = empty(dtype, shape_);
  copy.copy_from(*this);
  return copy;
}

namespace {

// Walks every element of `shape` as runs along the innermost axis, calling visit(source_offset,
// destination_offset, run_length) with offsets in elements.
template <typename Visit>
void for_each_row(const Shape& shape, const Shape& source_strides, const Shape& destination_strides, Visit visit) {
  const int rank = int(shape.size());
  if (rank == 0) {
    visit(0, 0, 1);
    return;
  }
  if (shape_numel(shape) == 0) return;
  std::vector<int64_t> index(rank, 0);
  const int64_t inner = shape[rank - 1];
  while (true) {
    int64_t source = 0, destination = 0;
    for (int i = 0; i < rank - 1; ++i) {
      source += index[i] * source_strides[i];
      destination += index[i] * destination_strides[i];
    }
    visit(source, destination, inner);
    int axis = rank - 2;
    while (axis >= 0 && ++index[axis] == shape[axis]) index[axis--] = 0;
    if (axis < 0) return;
  }
}

}  // namespace

void Tensor::copy_from(const Tensor& source) {
  K5_CHECK(source.shape_ == shape_, "copy: shape ", source.describe(), " into ", describe());
  K5_CHECK(device() == Device::CPU && source.device() == Device::CPU, "copy: host tensors only");
  const size_t source_size = dtype_size(source.dtype_), destination_size = dtype_size(dtype_);
  const int64_t source_inner_stride = dim() ? source.strides_.back() : 1;
  const int64_t destination_inner_stride = dim() ? strides_.back() : 1;
  std::vector<float> row;
  for_each_row(shape_, source.strides_, strides_, [&](int64_t source_offset, int64_t destination_offset, int64_t n) {
    const auto* from = static_cast<const uint8_t*>(source.raw()) + source_offset * source_size;
    auto* into = static_cast<uint8_t*>(raw()) + destination_offset * destination_size;
    if (source_inner_stride == 1 && destination_inner_stride == 1) {
      if (source.dtype_ == dtype_) {
        std::memcpy(into, from, size_t(n) * source_size);
      } else {
        row.resize(size_t(n));
        convert_to_f32(from, source.dtype_, row.data(), size_t(n));
        convert_from_f32(row.data(), into, dtype_, size_t(n));
      }
      return;
    }
    for (int64_t i = 0; i < n; ++i) {
      if (source.dtype_ == dtype_) {
        std::memcpy(into + i * destination_inner_stride * int64_t(destination_size),
                    from + i * source_inner_stride * int64_t(source_size), source_size);
        continue;
      }
      float value;
      convert_to_f32(from + i * source_inner_stride * int64_t(source_size), source.dtype_, &value, 1);
      convert_from_f32(&value, into + i * destination_inner_stride * int64_t(destination_size), dtype_, 1);
    }
  });
}

Tensor Tensor::to_device(Device device) const {
  if (device == this->device()) return *this;
  if (this->device() == Device::CPU) {
    const Tensor source = contiguous();
    Tensor copy = empty(dtype_, shape_, device);
    copy_bytes(copy.raw(), device, source.raw(), Device::CPU, bytes());
    return copy;
  }
  // From the device: bring back the span of storage the view covers, then let the host do the strides.
  int64_t span = 1;
  for (size_t i = 0; i < shape_.size(); ++i) {
    if (shape_[i] == 0) return empty(dtype_, shape_, device);
    K5_CHECK(strides_[i] >= 0, "to_device: negative stride in ", describe());
    span += (shape_[i] - 1) * strides_[i];
  }
  Tensor host(allocate_host(size_t(span) * dtype_size(dtype_)), dtype_, shape_, strides_);
  copy_bytes(host.raw(), Device::CPU, raw(), this->device(), size_t(span) * dtype_size(dtype_));
  Tensor result = host.contiguous();
  return device == Device::CPU ? result : result.to_device(device);
}

std::vector<float> Tensor::to_f32_vector() const {
  Tensor as_f32 = to_device(Device::CPU).to(DType::F32).contiguous();
  const float* values = as_f32.data<float>();
  return std::vector<float>(values, values + numel());
}

std::string Tensor::describe() const { return concat(dtype_name(dtype_), ' ', shape_string(shape_)); }

}  // namespace k5
