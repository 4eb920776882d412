// The official flow-matching sampling loop (generation_utils.generate): Euler steps over the shifted time
// grid, classifier-free guidance, I2V first-frame conditioning, I2I edit channels.
#pragma once

#include "core/context.h"
#include "core/tensor.h"
#include "models/crossdit/crossdit.h"

namespace k5 {

struct TextCondition {
  Tensor text_embed;         // [L, in_text_dim] F32
  Tensor pooled_text_embed;  // [1, in_text_dim2] F32
  Tensor attention_mask;     // [L] U8, or undefined
};

struct SampleRequest {
  Tensor noise;  // [T, H, W, C] F32, C = in_visual_dim
  TextCondition positive;
  TextCondition negative;  // needed when |guidance - 1| > 1e-6
  Tensor first_frame;      // [1, H, W, C] or undefined (visual_cond models)
  Tensor edit_latent;      // [1, H, W, C] or undefined (instruct_type == channel)
  int steps = 50;
  double guidance = 5.0;
  double scheduler_scale = 5.0;
};

// The shifted time grid t'_k = s t_k / (1 + (s - 1) t_k), t_k = 1 - k / steps, k = 0..steps (float32).
std::vector<float> shifted_time_grid(int steps, double scheduler_scale);

// latents [T, H, W, C] F32: what the official loop returns for this noise.
Tensor sample(Context& ctx, const CrossDit& dit, const SampleRequest& request);

}  // namespace k5
