#include "pipelines/sampler.h"

#include <cmath>

#include "core/error.h"

namespace k5 {

std::vector<float> shifted_time_grid(int steps, double scheduler_scale) {
  K5_CHECK(steps >= 1, "sampler: --steps must be at least 1, found ", steps);
  const float s = float(scheduler_scale);
  std::vector<float> grid(size_t(steps) + 1);
  for (int k = 0; k <= steps; ++k) {
    // torch.linspace(1, 0, steps + 1) in float32, then the shift in float32.
    const float t = float(1.0 - double(k) / double(steps));
    grid[size_t(k)] = s * t / (1.0f + (s - 1.0f) * t);
  }
  return grid;
}

namespace {

void check_condition(const TextCondition& c, const char* prefix) {
  K5_CHECK(c.text_embed.defined(), "missing input '", prefix, "text_embed'");
  K5_CHECK(c.pooled_text_embed.defined(), "missing input '", prefix, "pooled_text_embed'");
}

Tensor velocity(Context& ctx, const CrossDit& dit, const Tensor& model_input, float time, const TextCondition& c) {
  DitInputs inputs;
  inputs.x = model_input;
  inputs.text_embed = c.text_embed;
  inputs.pooled_text_embed = c.pooled_text_embed;
  inputs.time = time;
  inputs.attention_mask = c.attention_mask;
  return dit.forward(ctx, inputs);
}

}  // namespace

Tensor sample(Context& ctx, const CrossDit& dit, const SampleRequest& r) {
  const DitParams& p = dit.params();
  const int64_t C = p.in_visual_dim;
  K5_CHECK(r.noise.defined() && r.noise.dim() == 4 && r.noise.size(3) == C, "input 'noise' has shape ",
           r.noise.defined() ? shape_string(r.noise.shape()) : "none", ", expected [T, H, W, ", C, "]");
  const int64_t T = r.noise.size(0), H = r.noise.size(1), W = r.noise.size(2);
  const bool cfg = std::abs(r.guidance - 1.0) > 1e-6;
  check_condition(r.positive, "");
  if (cfg) check_condition(r.negative, "null_");
  const Shape frame_shape{1, H, W, C};
  if (r.first_frame.defined()) {
    K5_CHECK(p.visual_cond, "input 'first_frame' given but the config has no visual_cond (not an I2V model)");
    K5_CHECK(r.first_frame.shape() == frame_shape, "input 'first_frame' has shape ",
             shape_string(r.first_frame.shape()), ", expected ", shape_string(frame_shape));
  }
  const bool channel_edit = p.instruct_type == "channel";
  if (r.edit_latent.defined()) {
    K5_CHECK(channel_edit, "input 'edit_latent' given but the config has no instruct_type: channel");
    K5_CHECK(r.edit_latent.shape() == frame_shape && T == 1, "input 'edit_latent' has shape ",
             shape_string(r.edit_latent.shape()), ", expected ", shape_string(frame_shape), " (with T = 1)");
  }

  // The sampled state: x [T, H, W, C], plus concat(edit_latent, ones) (or zeros) channels for editing.
  const int64_t state_channels = channel_edit ? 2 * C + 1 : C;
  Tensor state = Tensor::zeros(DType::F32, {T, H, W, state_channels});
  state.slice(3, 0, C).copy_from(r.noise);
  if (channel_edit && r.edit_latent.defined()) {
    state.slice(3, C, 2 * C).copy_from(r.edit_latent);
    float* data = state.data<float>();
    for (int64_t i = 0; i < T * H * W; ++i) data[i * state_channels + 2 * C] = 1.0f;
  }
  // I2V model input: concat(x, cond, mask). The official generate() leaves cond all zeros (the first frame
  // enters through x[0], overwritten before every step) and sets mask = 1 on frame 0 when an image is given.
  Tensor model_input;
  if (p.visual_cond) {
    model_input = Tensor::zeros(DType::F32, {T, H, W, 2 * C + 1});
    if (r.first_frame.defined()) {
      float* data = model_input.data<float>();
      for (int64_t i = 0; i < H * W; ++i) data[i * (2 * C + 1) + 2 * C] = 1.0f;
    }
  }

  const std::vector<float> grid = shifted_time_grid(r.steps, r.scheduler_scale);
  const int64_t positions = T * H * W;
  for (int k = 0; k < r.steps; ++k) {
    const float time = grid[size_t(k)] * 1000.0f, dt = grid[size_t(k) + 1] - grid[size_t(k)];
    if (p.visual_cond) {
      if (r.first_frame.defined()) state.slice(0, 0, 1).copy_from(r.first_frame);
      model_input.slice(3, 0, C).copy_from(state);
    }
    const Tensor& input = p.visual_cond ? model_input : state;
    Tensor v = velocity(ctx, dit, input, time, r.positive);
    if (cfg) {
      const Tensor uncond = velocity(ctx, dit, input, time, r.negative);
      const float w = float(r.guidance);
      float* vd = v.data<float>();
      const float* ud = uncond.data<float>();
      for (int64_t i = 0; i < v.numel(); ++i) vd[i] = ud[i] + w * (vd[i] - ud[i]);
    }
    float* x = state.data<float>();
    const float* vd = v.data<float>();
    for (int64_t i = 0; i < positions; ++i)
      for (int64_t c = 0; c < C; ++c) x[i * state_channels + c] += dt * vd[i * C + c];
    ctx.log().debug("sample step ", k + 1, "/", r.steps, " t=", grid[size_t(k)]);
  }
  return state.slice(3, 0, C).contiguous();
}

}  // namespace k5
