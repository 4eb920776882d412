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

// RMSNorm of each head's D values before the rotation (the CrossDiT's q/k norm): weight [D] F32 or null.
struct HeadRmsNorm {
  const Tensor* weight;
  float eps;
};
// rms_norm over each head (as ops::rms_norm on x) then rope_interleaved, in one kernel: the same values as the
// two ops one after the other, with x going through memory once instead of twice.
void rms_norm_rope_interleaved(Context& ctx, Tensor& x, const HeadRmsNorm& norm, const Tensor& cos, const Tensor& sin);

}  // namespace k5::ops
