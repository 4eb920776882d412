// Operand checks shared by the backends' kernels (CPU and CUDA take the same layouts).
#pragma once

#include "backends/cpu/rows.h"
#include "core/error.h"
#include "core/tensor.h"
#include "ops/rope.h"

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

// nabla_select_blocks' operands (src/ops/attention.h): q_pool, k_pool [H, n, D] F32, sta [n, n] U8, block_mask
// [H, n, n] U8, all contiguous.
struct NablaSelectionShape {
  int64_t heads, blocks, dim;
};

inline NablaSelectionShape nabla_selection_shape(const Tensor& q_pool, const Tensor& k_pool, const Tensor& sta,
                                                 const Tensor& block_mask) {
  K5_CHECK(q_pool.dtype() == DType::F32 && q_pool.dim() == 3 && q_pool.is_contiguous() &&
               k_pool.shape() == q_pool.shape() && k_pool.dtype() == DType::F32 && k_pool.is_contiguous(),
           "nabla_select_blocks: block means must be contiguous F32 [H, n, D] of one shape, got ", q_pool.describe(),
           " and ", k_pool.describe());
  const int64_t heads = q_pool.size(0), blocks = q_pool.size(1), dim = q_pool.size(2);
  K5_CHECK(dim > 0, "nabla_select_blocks: empty head dim in ", q_pool.describe());
  K5_CHECK(sta.dtype() == DType::U8 && sta.is_contiguous() && (sta.shape() == Shape{blocks, blocks}),
           "nabla_select_blocks: the STA mask must be contiguous U8 [", blocks, ", ", blocks, "], got ",
           sta.describe());
  K5_CHECK(block_mask.dtype() == DType::U8 && block_mask.is_contiguous() &&
               (block_mask.shape() == Shape{heads, blocks, blocks}),
           "nabla_select_blocks: the block mask must be contiguous U8 [", heads, ", ", blocks, ", ", blocks, "], got ",
           block_mask.describe());
  return {heads, blocks, dim};
}

// The rotary ops' operands (src/ops/rope.h): x [L, H, D] F32 with a contiguous last dim, D even; cos, sin [L, D/2]
// rows; the optional norm's weight [D] (data null when absent).
struct RopeOperands {
  int64_t tokens, heads, dim, half;
  cpu::Rows cos, sin;
  cpu::Vector norm_weight;
};

inline RopeOperands rope_operands(const Tensor& x, const Tensor& cos, const Tensor& sin, const HeadRmsNorm* norm) {
  K5_CHECK(x.dtype() == DType::F32 && x.dim() == 3 && x.stride(2) == 1,
           "rope: expected F32 [L, H, D] with a contiguous last dim, got ", x.describe());
  const int64_t tokens = x.size(0), heads = x.size(1), dim = x.size(2), half = dim / 2;
  K5_CHECK(dim % 2 == 0, "rope: head dim ", dim, " is odd");
  const cpu::Rows cos_rows = cpu::rows_of(cos, "rope cos"), sin_rows = cpu::rows_of(sin, "rope sin");
  K5_CHECK(cos_rows.count == tokens && cos_rows.width == half && sin_rows.count == tokens && sin_rows.width == half,
           "rope: cos/sin must be [", tokens, ", ", half, "], got ", cos.describe(), " and ", sin.describe());
  const cpu::Vector weight =
      norm && norm->weight ? cpu::vector_of(*norm->weight, dim, "rope norm weight") : cpu::Vector{nullptr, dim, 1};
  return {tokens, heads, dim, half, cos_rows, sin_rows, weight};
}

}  // namespace k5::ops
