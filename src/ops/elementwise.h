// Element-wise and row-wise ops on F32 tensors (contiguous unless stated). `out` may alias an input.
#pragma once

#include "core/context.h"
#include "core/tensor.h"

namespace k5::ops {

// The activations may also write a contiguous BF16 `out`: the float32 results rounded to nearest even.
void silu(Context& ctx, const Tensor& x, Tensor& out);
void gelu(Context& ctx, const Tensor& x, Tensor& out);        // exact: 0.5 x (1 + erf(x / sqrt 2))
void quick_gelu(Context& ctx, const Tensor& x, Tensor& out);  // x * sigmoid(1.702 x)
// out = silu(gate) * up  (SwiGLU)
void swiglu(Context& ctx, const Tensor& gate, const Tensor& up, Tensor& out);
// out = a + b, out = a * b; b has the shape of a, or of a's last dim (broadcast over rows).
void add(Context& ctx, const Tensor& a, const Tensor& b, Tensor& out);
void mul(Context& ctx, const Tensor& a, const Tensor& b, Tensor& out);
void scale(Context& ctx, const Tensor& x, float factor, Tensor& out);
// Softmax over the last dim.
void softmax(Context& ctx, const Tensor& x, Tensor& out);

}  // namespace k5::ops
