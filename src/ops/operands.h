// Operand checks shared by the backends' kernels (CPU and CUDA take the same layouts).
#pragma once

#include "core/error.h"
#include "core/tensor.h"

namespace k5::ops {

inline void check_same_shape(const Tensor& a, const Tensor& b, const char* what) {
  K5_CHECK(a.shape() == b.shape(), what, ": shapes differ: ", a.describe(), " vs ", b.describe());
}

inline float* contiguous_f32(const Tensor& t, const char* what) {
  K5_CHECK(t.dtype() == DType::F32 && t.is_contiguous(), what, ": expected a contiguous F32 tensor, got ",
           t.describe());
  return t.data<float>();
}

// A binary op's operands: out = a (op) b, where b has a's shape or is one row repeated over a's rows
// (b[i % period]).
struct BinaryOperands {
  const float* left;
  const float* right;
  float* result;
  int64_t count, period;
};

inline BinaryOperands binary_operands(const Tensor& a, const Tensor& b, Tensor& out) {
  check_same_shape(a, out, "binary op");
  BinaryOperands operands{contiguous_f32(a, "binary op input"), nullptr, contiguous_f32(out, "binary op output"),
                          a.numel(), a.numel()};
  if (b.shape() == a.shape()) {
    operands.right = contiguous_f32(b, "binary op operand");
  } else {
    K5_CHECK(a.dim() >= 1 && b.numel() == a.size(-1) && b.is_contiguous() && b.dtype() == DType::F32,
             "binary op: cannot broadcast ", b.describe(), " over ", a.describe());
    operands.right = b.data<float>();
    operands.period = b.numel();
  }
  return operands;
}

}  // namespace k5::ops
