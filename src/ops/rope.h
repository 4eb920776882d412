// Rotary position embeddings, applied in place in float32.
#pragma once

#include "core/context.h"
#include "core/tensor.h"

namespace k5::ops {

// x: [L, H, D] F32 (last dim contiguous). cos, sin: [L, D/2] F32.
// Interleaved pairs (the Kandinsky DiT form): (x[2i], x[2i+1]) rotated by angle i of the token.
void rope_interleaved(Context& ctx, Tensor& x, const Tensor& cos, const Tensor& sin);
// Half-split pairs (Qwen/LLaMA "rotate_half" form): (x[i], x[i + D/2]) rotated by angle i.
void rope_half_split(Context& ctx, Tensor& x, const Tensor& cos, const Tensor& sin);

}  // namespace k5::ops
