// A tensor seen as a matrix of rows: last dim contiguous, leading dims collapsible to one row index with a
// single stride. Most CPU kernels walk their operands this way.
#pragma once

#include "core/error.h"
#include "core/tensor.h"

namespace k5::cpu {

struct Rows {
  float* data;
  int64_t count;   // number of rows
  int64_t width;   // elements per row
  int64_t stride;  // elements between consecutive rows
  float* row(int64_t index) const { return data + index * stride; }
};

inline Rows rows_of(const Tensor& t, const char* what) {
  K5_CHECK(t.dtype() == DType::F32, what, ": expected F32, got ", t.describe());
  K5_CHECK(t.dim() >= 1, what, ": expected at least one dimension");
  const int rank = t.dim();
  const int64_t width = t.shape()[rank - 1];
  K5_CHECK(width <= 1 || t.strides()[rank - 1] == 1, what, ": last dimension must be contiguous in ", t.describe());
  int64_t count = 1, stride = width;
  bool first = true;
  // Leading dims must nest: stride[i] == stride[i+1] * shape[i+1] for all but the innermost leading dim.
  for (int i = rank - 2; i >= 0; --i) {
    if (t.shape()[i] == 1) continue;
    if (first) {
      stride = t.strides()[i];
      first = false;
    } else {
      K5_CHECK(t.strides()[i] == stride * count, what, ": leading dimensions of ", t.describe(),
               " cannot be viewed as rows");
    }
    count *= t.shape()[i];
  }
  return {t.data<float>(), count, width, stride};
}

// The shape of a contiguous BF16 tensor [..., D] as rows (`data` is null: the values are the tensor's uint16_t data).
inline Rows bf16_rows_of(const Tensor& t, const char* what) {
  K5_CHECK(t.dtype() == DType::BF16 && t.is_contiguous() && t.dim() >= 1, what,
           ": expected a contiguous BF16 tensor, got ", t.describe());
  const int64_t width = t.size(-1);
  return {nullptr, width == 0 ? 0 : t.numel() / width, width, width};
}

// A [D] (or [1, D], or a strided view) vector as a plain float pointer with an element stride.
struct Vector {
  const float* data;
  int64_t size;
  int64_t stride;
  float operator[](int64_t i) const { return data[i * stride]; }
};

inline Vector vector_of(const Tensor& t, int64_t expected, const char* what) {
  K5_CHECK(t.dtype() == DType::F32, what, ": expected F32, got ", t.describe());
  K5_CHECK(t.numel() == expected, what, ": expected ", expected, " elements, got ", t.describe());
  int64_t stride = 1;
  for (int i = 0; i < t.dim(); ++i)
    if (t.shape()[i] != 1) stride = t.strides()[i];
  return {t.data<float>(), expected, stride};
}

}  // namespace k5::cpu
