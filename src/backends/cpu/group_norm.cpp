// GroupNorm with an optional fused SiLU (the VAE resnets always follow the norm with SiLU). Written so the
// compiler vectorises every loop: statistics in 8 float lanes per block of 2048 values, summed into double
// per block (a group holds up to ~10^8 values at full video size); SiLU with a polynomial exp.
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "backends/cpu/conv.h"

namespace k5::cpu {
namespace {

constexpr int64_t kBlock = 2048;

// exp(x) for x in float range: 2^n * p(r), r = x - n ln2, |r| <= ln2/2; relative error ~2e-7.
inline float fast_exp(float x) {
  x = std::fmin(std::fmax(x, -87.0f), 88.0f);
  const float n = std::floor(x * 1.44269504f + 0.5f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

double block_sum(const float* values, int64_t count) {
  double total = 0;
  for (int64_t start = 0; start < count; start += kBlock) {
    const int64_t end = std::min(count, start + kBlock);
    float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = start;
    for (; i + 8 <= end; i += 8)
      for (int l = 0; l < 8; ++l) lanes[l] += values[i + l];
    double block = 0;
    for (int l = 0; l < 8; ++l) block += lanes[l];
    for (; i < end; ++i) block += values[i];
    total += block;
  }
  return total;
}

double block_squared_deviation(const float* values, int64_t count, float mean) {
  double total = 0;
  for (int64_t start = 0; start < count; start += kBlock) {
    const int64_t end = std::min(count, start + kBlock);
    float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = start;
    for (; i + 8 <= end; i += 8)
      for (int l = 0; l < 8; ++l) {
        const float d = values[i + l] - mean;
        lanes[l] += d * d;
      }
    double block = 0;
    for (int l = 0; l < 8; ++l) block += lanes[l];
    for (; i < end; ++i) block += double(values[i] - mean) * double(values[i] - mean);
    total += block;
  }
  return total;
}

}  // namespace

ops::GroupMoments group_moments(Context& ctx, const Tensor& x, int groups) {
  const int64_t channels = x.size(0);
  const int64_t count = channels == 0 ? 0 : x.numel() / groups;
  const float* input = x.data<float>();
  ops::GroupMoments moments;
  moments.count = count;
  moments.mean.assign(size_t(groups), 0.0);
  moments.m2.assign(size_t(groups), 0.0);
  ctx.pool().parallel_for(0, groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) {
      const float* values = input + g * count;
      const double m = block_sum(values, count) / double(count);
      // Two passes (mean, then squared deviations) as PyTorch's CPU GroupNorm is accurate to.
      const double rounding = double(float(m)) - m;
      moments.mean[size_t(g)] = m;
      moments.m2[size_t(g)] = block_squared_deviation(values, count, float(m)) - double(count) * rounding * rounding;
    }
  });
  return moments;
}

void group_norm_apply(Context& ctx, const Tensor& x, const ops::GroupMoments& moments, const Tensor* weight,
                      const Tensor* bias, float eps, bool silu, Tensor& out) {
  const int64_t channels = x.size(0);
  const int64_t positions = channels == 0 ? 0 : x.numel() / channels;
  const int64_t group_channels = channels / int64_t(moments.mean.size());
  const float* input = x.data<float>();
  float* output = out.data<float>();
  const float* gamma = weight ? weight->data<float>() : nullptr;
  const float* beta = bias ? bias->data<float>() : nullptr;
  ctx.pool().parallel_for(0, channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const size_t g = size_t(c / group_channels);
      const double inverse_std = 1.0 / std::sqrt(moments.m2[g] / double(moments.count) + double(eps));
      const float scale = float(inverse_std) * (gamma ? gamma[c] : 1.0f);
      const float shift = (beta ? beta[c] : 0.0f) - float(moments.mean[g]) * scale;
      const float* src = input + c * positions;
      float* dst = output + c * positions;
      if (silu) {
        for (int64_t i = 0; i < positions; ++i) {
          const float y = src[i] * scale + shift;
          dst[i] = y / (1.0f + fast_exp(-y));
        }
      } else {
        for (int64_t i = 0; i < positions; ++i) dst[i] = src[i] * scale + shift;
      }
    }
  });
}

}  // namespace k5::cpu
