// Normalisations and the DiT's modulation ops. All compute in float32.
#pragma once

#include "core/context.h"
#include "core/tensor.h"

namespace k5::ops {

// Over the last dim of x [..., D] (rows contiguous); weight/bias [D] or null (no affine).
// out may alias x.
void layer_norm(Context& ctx, const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& out);
void rms_norm(Context& ctx, const Tensor& x, const Tensor* weight, float eps, Tensor& out);

// out = layer_norm_noaffine(x) * (1 + scale) + shift, with x [M, D] and scale/shift [D] (broadcast over
// rows; may be strided views of a modulation vector). out may alias x, or be a contiguous BF16 tensor: the float32
// results rounded to nearest even, exactly what a linear with BF16 weights rounds an F32 input to (so a
// normalised input feeding several such linears is rounded once).
void scale_shift_norm(Context& ctx, const Tensor& x, const Tensor& scale, const Tensor& shift, float eps, Tensor& out);

// x += gate * h, with x, h [M, D] and gate [D] broadcast over rows.
void gated_residual(Context& ctx, Tensor& x, const Tensor& h, const Tensor& gate);

}  // namespace k5::ops
