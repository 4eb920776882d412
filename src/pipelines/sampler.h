// The official flow-matching sampling loop (generation_utils.generate): Euler steps over the shifted time
// grid, classifier-free guidance, I2V first-frame conditioning, I2I edit channels, and MagCache
// (magcache_utils.py).
//
// Precision of the sampled state: the official loop keeps the state in the noise's dtype (bfloat16) and
// runs the DiT under bf16 autocast, so every update is rounded to bf16 (v = bf16(DiT), the CFG mix and the
// Euler step each rounded). k5 does the same in bf16 mode; in fp32 mode everything stays float32.
#pragma once

#include <functional>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "models/crossdit/crossdit.h"

namespace k5 {

struct TextCondition {
  Tensor text_embed;         // [L, in_text_dim] F32
  Tensor pooled_text_embed;  // [1, in_text_dim2] F32
  Tensor attention_mask;     // [L] U8, or undefined
};

// MagCache as the official code applies it: per branch (cond / uncond), after the first 20% of the model
// evaluations, the product of the calibrated magnitude ratios is accumulated with its error; while the
// error stays under 0.12 for at most 2 consecutive evaluations the decoder blocks are skipped and their
// cached residual reused. `config_ratios`: the config's magcache.mag_ratios (one per evaluation after the
// first step); they are nearest-interpolated per branch when `steps` differs from their calibration.
class MagCache {
 public:
  MagCache(const std::vector<double>& config_ratios, int steps, bool cfg);
  // Before evaluation number `evaluation` (0-based over the run; cond and uncond each count with CFG):
  // whether the blocks may be skipped.
  bool skip(int branch);
  Tensor& residual(int branch) { return residual_[branch]; }
  void advance();  // after each evaluation
  int skipped() const { return skipped_; }

 private:
  std::vector<double> ratios_;  // one per evaluation slot, 2 per step
  int count_ = 0, evaluations_ = 0, skipped_ = 0;
  bool cfg_ = true;
  double accumulated_ratio_[2] = {1.0, 1.0}, accumulated_error_[2] = {0.0, 0.0};
  int accumulated_steps_[2] = {0, 0};
  Tensor residual_[2];
};

struct SampleRequest {
  Tensor noise;  // [T, H, W, C] F32 (values of the bf16 noise)
  TextCondition positive;
  TextCondition negative;  // needed when |guidance - 1| > 1e-6
  Tensor first_frame;      // [1, H, W, C] or undefined (visual_cond models)
  Tensor edit_latent;      // [1, H, W, C] or undefined (instruct_type == channel)
  int steps = 50;
  double guidance = 5.0;
  double scheduler_scale = 5.0;
  std::vector<double> mag_ratios;  // non-empty: MagCache on, with these calibrated ratios
  // Called after each step (1-based) with the number of model evaluations skipped so far; may throw to stop.
  std::function<void(int step, int steps, int skipped)> on_step;
};

// The shifted time grid t'_k = s t_k / (1 + (s - 1) t_k), t_k = 1 - k / steps, k = 0..steps (float32).
std::vector<float> shifted_time_grid(int steps, double scheduler_scale);

// latents [T, H, W, C] F32: what the official loop returns for this noise.
Tensor sample(Context& ctx, const CrossDit& dit, const SampleRequest& request);

// The official I2V post-processing (normalize_first_frame): the first 4 latent frames are re-normalised
// toward the mean/std of the next (up to 5) frames, the changes clamped. latents [T, H, W, C] F32, in place.
void normalize_first_frames(Tensor& latents);

}  // namespace k5
