// A linear layer's parameters as models hold them: a float weight (F32/BF16), or an int8 weight-only one
// (ops/linear_int8.h), and an optional bias. One call runs either.
#pragma once

#include "core/context.h"
#include "core/tensor.h"
#include "ops/linear_int8.h"

namespace k5::ops {

struct LinearLayer {
  Tensor weight;    // [out, in] F32 or BF16; undefined when the layer is int8
  Int8Weight int8;  // defined instead of `weight` for an int8 layer
  Tensor bias;      // [out] F32, or undefined

  bool is_int8() const { return int8.values.defined(); }
  const Tensor* bias_or_null() const { return bias.defined() ? &bias : nullptr; }
  // The dtype the layer's GEMM reads its input in under `precision`: BF16 weights, and int8 ones in bf16 mode,
  // round an F32 input to BF16 anyway, so an input that only feeds such layers can be written as BF16.
  DType input_dtype(Precision precision) const;
};

// out[M, N] = x[M, K] * W^T + bias, F32 in the workspace; x F32 with contiguous rows, or BF16 contiguous when
// input_dtype() is BF16.
Tensor linear(Context& ctx, const Tensor& x, const LinearLayer& layer);

}  // namespace k5::ops
