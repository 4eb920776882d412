// Int8 weight-only linear layers: weights stored as int8 with one float32 scale per output channel
// (symmetric, scale = max|w_row| / 127), activations float32 in and out. Halves the memory of BF16 weights.
#pragma once

#include "core/context.h"
#include "core/tensor.h"

namespace k5::ops {

struct Int8Weight {
  Tensor values;  // I8 [N, K], contiguous
  Tensor scales;  // F32 [N]
  int64_t out_features() const { return values.size(0); }
  int64_t in_features() const { return values.size(1); }
};

// Quantises a F32/BF16 [N, K] weight per output row (round to nearest, ties away from zero).
Int8Weight quantize_int8(Context& ctx, const Tensor& weight);

// out[M, N] = x[M, K] * dequant(weight)^T + bias[N]; x F32 with contiguous rows (or, under Precision::bf16,
// which rounds it to BF16 anyway, BF16 contiguous), bias F32/BF16 [N] or null. Few rows read the int8 weight
// directly; many rows (GEMM-bound) multiply it expanded to BF16 (F32 on the GPU in fp32 mode) block by block, the
// scales applied to the float32 products.
void linear_int8(Context& ctx, const Tensor& x, const Int8Weight& weight, const Tensor* bias, Tensor& out);
Tensor linear_int8(Context& ctx, const Tensor& x, const Int8Weight& weight, const Tensor* bias = nullptr);

}  // namespace k5::ops
