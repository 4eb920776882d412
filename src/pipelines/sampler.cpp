#include "pipelines/sampler.h"

#include <algorithm>
#include <cmath>
#include <optional>

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

// numpy's nearest_interp of magcache_utils: indices round(i * (n - 1) / (m - 1)), half to even.
std::vector<double> nearest_interp(const std::vector<double>& source, int target) {
  if (target == 1) return {source.back()};
  const double scale = double(source.size() - 1) / double(target - 1);
  std::vector<double> out(static_cast<size_t>(target));
  for (int i = 0; i < target; ++i) out[size_t(i)] = source[size_t(std::nearbyint(double(i) * scale))];
  return out;
}

}  // namespace

MagCache::MagCache(const std::vector<double>& config_ratios, int steps, bool cfg) : cfg_(cfg) {
  K5_CHECK(!config_ratios.empty(), "--magcache: the config has no magcache.mag_ratios");
  evaluations_ = 2 * steps;
  ratios_ = {1.0, 1.0};
  ratios_.insert(ratios_.end(), config_ratios.begin(), config_ratios.end());
  if (ratios_.size() != size_t(evaluations_)) {
    // The official code interpolates the cond (even) and uncond (odd) ratios separately to the step count.
    std::vector<double> cond, uncond;
    for (size_t i = 0; i < ratios_.size(); ++i) (i % 2 ? uncond : cond).push_back(ratios_[i]);
    K5_CHECK(!cond.empty() && !uncond.empty(), "--magcache: too few magcache.mag_ratios in the config");
    cond = nearest_interp(cond, steps);
    uncond = nearest_interp(uncond, steps);
    ratios_.assign(size_t(evaluations_), 0.0);
    for (int i = 0; i < steps; ++i) {
      ratios_[size_t(2 * i)] = cond[size_t(i)];
      ratios_[size_t(2 * i + 1)] = uncond[size_t(i)];
    }
  }
}

bool MagCache::skip(int branch) {
  constexpr double kThreshold = 0.12, kRetention = 0.2;
  constexpr int kMaxSkips = 2;
  if (count_ < int(evaluations_ * kRetention)) return false;
  accumulated_ratio_[branch] *= ratios_[size_t(count_)];
  accumulated_steps_[branch] += 1;
  accumulated_error_[branch] += std::abs(1.0 - accumulated_ratio_[branch]);
  if (accumulated_error_[branch] < kThreshold && accumulated_steps_[branch] <= kMaxSkips &&
      residual_[branch].defined()) {
    ++skipped_;
    return true;
  }
  accumulated_error_[branch] = 0.0;
  accumulated_steps_[branch] = 0;
  accumulated_ratio_[branch] = 1.0;
  return false;
}

void MagCache::advance() {
  count_ += cfg_ ? 1 : 2;  // without CFG only the cond slots are visited
  if (count_ >= evaluations_) {
    count_ = 0;
    accumulated_ratio_[0] = accumulated_ratio_[1] = 1.0;
    accumulated_error_[0] = accumulated_error_[1] = 0.0;
    accumulated_steps_[0] = accumulated_steps_[1] = 0;
  }
}

namespace {

void check_condition(const TextCondition& c, const char* prefix) {
  K5_CHECK(c.text_embed.defined(), "missing input '", prefix, "text_embed'");
  K5_CHECK(c.pooled_text_embed.defined(), "missing input '", prefix, "pooled_text_embed'");
}

float round_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }

void round_to_bf16(Tensor& t) {
  float* d = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) d[i] = round_bf16(d[i]);
}

Tensor velocity(Context& ctx, const CrossDit& dit, const Tensor& model_input, float time, const TextCondition& c,
                MagCache* cache, int branch) {
  DitInputs inputs;
  inputs.x = model_input;
  inputs.text_embed = c.text_embed;
  inputs.pooled_text_embed = c.pooled_text_embed;
  inputs.time = time;
  inputs.attention_mask = c.attention_mask;
  if (cache) {
    inputs.reuse_visual_residual = cache->skip(branch);
    inputs.visual_residual = &cache->residual(branch);
  }
  Tensor v = dit.forward(ctx, inputs);
  if (cache) cache->advance();
  return v;
}

}  // namespace

Tensor sample(Context& ctx, const CrossDit& dit, const SampleRequest& r) {
  const DitParams& p = dit.params();
  const int64_t C = p.in_visual_dim;
  K5_CHECK(r.noise.defined() && r.noise.dim() == 4 && r.noise.size(3) == C, "input 'noise' has shape ",
           r.noise.defined() ? shape_string(r.noise.shape()) : "none", ", expected [T, H, W, ", C, "]");
  const int64_t T = r.noise.size(0), H = r.noise.size(1), W = r.noise.size(2);
  const bool cfg = std::abs(r.guidance - 1.0) > 1e-6;
  const bool bf16 = ctx.precision() == Precision::bf16;
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
  if (bf16) round_to_bf16(state);
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
  Tensor first_frame;
  if (r.first_frame.defined()) {
    first_frame = r.first_frame.contiguous().clone();
    if (bf16) round_to_bf16(first_frame);
  }

  std::optional<MagCache> magcache;
  if (!r.mag_ratios.empty()) magcache.emplace(r.mag_ratios, r.steps, cfg);
  MagCache* cache = magcache ? &*magcache : nullptr;
  const std::vector<float> grid = shifted_time_grid(r.steps, r.scheduler_scale);
  const int64_t positions = T * H * W;
  for (int k = 0; k < r.steps; ++k) {
    const float time = grid[size_t(k)] * 1000.0f, dt = grid[size_t(k) + 1] - grid[size_t(k)];
    if (p.visual_cond) {
      if (first_frame.defined()) state.slice(0, 0, 1).copy_from(first_frame);
      model_input.slice(3, 0, C).copy_from(state);
    }
    const Tensor& input = p.visual_cond ? model_input : state;
    Tensor v = velocity(ctx, dit, input, time, r.positive, cache, 0);
    float* vd = v.data<float>();
    if (bf16) round_to_bf16(v);
    if (cfg) {
      Tensor uncond = velocity(ctx, dit, input, time, r.negative, cache, 1);
      const float w = float(r.guidance);
      const float* ud = uncond.data<float>();
      if (bf16) {
        round_to_bf16(uncond);
        for (int64_t i = 0; i < v.numel(); ++i) vd[i] = round_bf16(ud[i] + round_bf16(w * round_bf16(vd[i] - ud[i])));
      } else {
        for (int64_t i = 0; i < v.numel(); ++i) vd[i] = ud[i] + w * (vd[i] - ud[i]);
      }
    }
    float* x = state.data<float>();
    for (int64_t i = 0; i < positions; ++i)
      for (int64_t c = 0; c < C; ++c) {
        float& xc = x[i * state_channels + c];
        xc = bf16 ? round_bf16(xc + round_bf16(dt * vd[i * C + c])) : xc + dt * vd[i * C + c];
      }
    ctx.log().debug("sample step ", k + 1, "/", r.steps, " t=", grid[size_t(k)]);
    if (r.on_step) r.on_step(k + 1, r.steps, cache ? cache->skipped() : 0);
  }
  return state.slice(3, 0, C).contiguous();
}

void normalize_first_frames(Tensor& latents) {
  K5_CHECK(latents.dtype() == DType::F32 && latents.dim() == 4 && latents.is_contiguous(),
           "normalize_first_frames: expected contiguous F32 [T, H, W, C] latents, got ", latents.describe());
  constexpr int64_t kFirst = 4, kReference = 5;
  const int64_t T = latents.size(0), frame = latents.numel() / std::max<int64_t>(T, 1);
  // The official code needs reference frames after the first four (with none it would produce NaN).
  if (T <= kFirst) return;
  float* data = latents.data<float>();
  auto stats = [&](int64_t begin, int64_t end) {  // mean and unbiased std (torch.std) of frames [begin, end)
    const int64_t n = (end - begin) * frame;
    double sum = 0;
    for (int64_t i = begin * frame; i < end * frame; ++i) sum += data[i];
    const double mean = sum / double(n);
    double squares = 0;
    for (int64_t i = begin * frame; i < end * frame; ++i) squares += (data[i] - mean) * (data[i] - mean);
    return std::pair<double, double>(mean, std::sqrt(squares / double(n - 1)));
  };
  // samples[4 : 4 + min(5, T - 1)], as Python slices it.
  const auto [reference_mean, reference_std] = stats(kFirst, std::min(T, kFirst + std::min(kReference, T - 1)));
  for (int64_t t = 0; t < kFirst; ++t) {
    const auto [mean, std_dev] = stats(t, t + 1);
    const double target_mean = std::clamp(reference_mean, mean - 0.05, mean + 0.1);
    const double target_std = std::clamp(reference_std, std_dev - 0.1, std_dev + 0.25);
    for (int64_t i = t * frame; i < (t + 1) * frame; ++i)
      data[i] = float((data[i] - mean) / std_dev * target_std + target_mean);
  }
}

}  // namespace k5
