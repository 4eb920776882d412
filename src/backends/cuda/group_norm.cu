// GroupNorm (+ fused SiLU) on the GPU: the CUDA side of group_norm / group_moments / group_norm_apply in
// src/ops/conv.h. A group is a contiguous run of `count` = C/groups * positions values of x [C, ...]; it can
// hold ~10^8 values at full video size, so the statistics are accumulated in double (the CPU sums float
// lanes into double per 2048-value block; double throughout is at least as accurate). Two passes, as the CPU:
// the mean, then the squared deviations from it. Each pass splits every group into slices, one block per
// (slice, group) writing a partial sum, and a second kernel adds a group's partials in a fixed order, so the
// result is deterministic.
#include <algorithm>
#include <vector>

#include "backends/cuda/block_reduce.cuh"
#include "backends/cuda/check.h"
#include "backends/cuda/device.h"
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"

namespace k5::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxSlices = 1024;  // per group: bounds the partial-sum buffer
constexpr int64_t kMinSliceValues = 16 * kThreads;

// partial[g * slices + s] = sum over slice s of group g of x (mean == null) or of (x - mean[g])^2.
// Grid: (slices, groups).
__global__ void group_partial_sums_kernel(const float* x, int64_t count, int64_t slice_length, const double* mean,
                                          double* partial) {
  const int64_t g = blockIdx.y, s = blockIdx.x;
  const float* values = x + g * count;
  const int64_t begin = s * slice_length, end = begin + slice_length < count ? begin + slice_length : count;
  double sum = 0.0;
  if (mean) {
    const double centre = mean[g];
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
      const double deviation = double(values[i]) - centre;
      sum += deviation * deviation;
    }
  } else {
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) sum += double(values[i]);
  }
  sum = block_sum(sum);
  if (threadIdx.x == 0) partial[g * gridDim.x + s] = sum;
}

// result[g] = factor * sum of group g's `slices` partials. One block per group.
__global__ void group_finish_kernel(const double* partial, int64_t slices, double factor, double* result) {
  double sum = 0.0;
  for (int64_t s = threadIdx.x; s < slices; s += blockDim.x) sum += partial[blockIdx.x * slices + s];
  sum = block_sum(sum);
  if (threadIdx.x == 0) result[blockIdx.x] = sum * factor;
}

// Per channel: y = x * scale[c] + shift[c], computed exactly as the CPU does (double inverse std, rounded to
// float, then the float affine).
__global__ void group_affine_kernel(const double* mean, const double* m2, double count, float eps, const float* gamma,
                                    const float* beta, int64_t channels, int64_t group_channels, float* scale,
                                    float* shift) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= channels) return;
  const int64_t g = c / group_channels;
  const double inverse_std = 1.0 / sqrt(m2[g] / count + double(eps));
  const float channel_scale = float(inverse_std) * (gamma ? gamma[c] : 1.0f);
  scale[c] = channel_scale;
  shift[c] = (beta ? beta[c] : 0.0f) - float(mean[g]) * channel_scale;
}

// out may alias x: each element is read and written by the same thread.
template <bool silu>
__global__ void group_norm_apply_kernel(const float* x, const float* scale, const float* shift, int64_t positions,
                                        int64_t total, float* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i / positions;
    const float y = x[i] * scale[c] + shift[c];
    out[i] = silu ? y / (1.0f + expf(-y)) : y;
  }
}

void check_operand(const Tensor& t, const char* what) {
  K5_CHECK(t.device() == Device::CUDA && t.dtype() == DType::F32 && t.is_contiguous(), "group_norm: ", what, " ",
           t.describe(), " must be a contiguous F32 tensor on the GPU");
}

int64_t values_per_group(const Tensor& x, int64_t groups) {
  check_operand(x, "input");
  K5_CHECK(x.dim() >= 1 && groups >= 1 && groups <= 65535 && x.size(0) % groups == 0, "group_norm: ", x.describe(),
           " does not split into ", groups, " groups (at most 65535)");
  return x.size(0) == 0 ? 0 : x.numel() / groups;
}

// mean_and_m2: [2 * groups] doubles on the device, mean then m2. count > 0.
void device_moments(const float* x, int64_t groups, int64_t count, double* mean_and_m2) {
  const int64_t slice_length = std::max(kMinSliceValues, (count + kMaxSlices - 1) / kMaxSlices);
  const int64_t slices = (count + slice_length - 1) / slice_length;
  const ScratchBuffer partial(size_t(groups * slices) * sizeof(double));
  double* mean = mean_and_m2;
  double* m2 = mean_and_m2 + groups;
  const dim3 grid{unsigned(slices), unsigned(groups)};
  group_partial_sums_kernel<<<grid, kThreads>>>(x, count, slice_length, nullptr, partial.as<double>());
  K5_CUDA_CHECK_LAUNCH("group_partial_sums_kernel (sum)");
  group_finish_kernel<<<unsigned(groups), kThreads>>>(partial.as<double>(), slices, 1.0 / double(count), mean);
  K5_CUDA_CHECK_LAUNCH("group_finish_kernel (mean)");
  group_partial_sums_kernel<<<grid, kThreads>>>(x, count, slice_length, mean, partial.as<double>());
  K5_CUDA_CHECK_LAUNCH("group_partial_sums_kernel (squared deviations)");
  group_finish_kernel<<<unsigned(groups), kThreads>>>(partial.as<double>(), slices, 1.0, m2);
  K5_CUDA_CHECK_LAUNCH("group_finish_kernel (m2)");
}

// out = the normalised x with device statistics (mean_and_m2 as device_moments writes them).
void apply_with_device_moments(const Tensor& x, const double* mean_and_m2, int64_t groups, int64_t count,
                               const Tensor* weight, const Tensor* bias, float eps, bool silu, Tensor& out) {
  check_operand(out, "output");
  K5_CHECK(out.shape() == x.shape(), "group_norm: output ", out.describe(), " does not match input ", x.describe());
  const int64_t channels = x.size(0);
  for (const Tensor* t : {weight, bias})
    if (t) {
      check_operand(*t, "affine parameter");
      K5_CHECK(t->numel() == channels, "group_norm: affine parameter ", t->describe(), " for ", channels, " channels");
    }
  if (x.numel() == 0) return;
  const ScratchBuffer affine(size_t(2 * channels) * sizeof(float));
  float* scale = affine.as<float>();
  float* shift = scale + channels;
  group_affine_kernel<<<grid_stride_blocks(channels, kThreads), kThreads>>>(
      mean_and_m2, mean_and_m2 + groups, double(count), eps, weight ? weight->data<float>() : nullptr,
      bias ? bias->data<float>() : nullptr, channels, channels / groups, scale, shift);
  K5_CUDA_CHECK_LAUNCH("group_affine_kernel");
  const int64_t total = x.numel(), positions = total / channels;
  if (silu)
    group_norm_apply_kernel<true><<<grid_stride_blocks(total, kThreads), kThreads>>>(
        x.data<float>(), scale, shift, positions, total, out.data<float>());
  else
    group_norm_apply_kernel<false><<<grid_stride_blocks(total, kThreads), kThreads>>>(
        x.data<float>(), scale, shift, positions, total, out.data<float>());
  K5_CUDA_CHECK_LAUNCH("group_norm_apply_kernel");
}

}  // namespace

ops::GroupMoments group_moments(Context&, const Tensor& x, int groups) {
  const int64_t count = values_per_group(x, groups);
  ops::GroupMoments moments;
  moments.count = count;
  moments.mean.assign(size_t(groups), 0.0);
  moments.m2.assign(size_t(groups), 0.0);
  if (count == 0) return moments;
  const ScratchBuffer statistics(size_t(2 * groups) * sizeof(double));
  device_moments(x.data<float>(), groups, count, statistics.as<double>());
  // Waits for the kernels (the copy is on the default stream).
  std::vector<double> host(size_t(2 * groups));
  copy_device_to_host(host.data(), statistics.as<double>(), host.size() * sizeof(double));
  std::copy(host.begin(), host.begin() + groups, moments.mean.begin());
  std::copy(host.begin() + groups, host.end(), moments.m2.begin());
  return moments;
}

void group_norm_apply(Context&, const Tensor& x, const ops::GroupMoments& moments, const Tensor* weight,
                      const Tensor* bias, float eps, bool silu, Tensor& out) {
  const int64_t groups = int64_t(moments.mean.size());
  values_per_group(x, groups);
  K5_CHECK(moments.count > 0 && moments.m2.size() == moments.mean.size(), "group_norm: no statistics");
  std::vector<double> host(moments.mean);
  host.insert(host.end(), moments.m2.begin(), moments.m2.end());
  const ScratchBuffer statistics(host.size() * sizeof(double));
  copy_host_to_device(statistics.as<double>(), host.data(), host.size() * sizeof(double));
  apply_with_device_moments(x, statistics.as<double>(), groups, moments.count, weight, bias, eps, silu, out);
}

void group_norm(Context&, const Tensor& x, int groups, const Tensor* weight, const Tensor* bias, float eps, bool silu,
                Tensor& out) {
  const int64_t count = values_per_group(x, groups);
  if (count == 0) return;
  const ScratchBuffer statistics(size_t(2 * groups) * sizeof(double));
  device_moments(x.data<float>(), groups, count, statistics.as<double>());
  apply_with_device_moments(x, statistics.as<double>(), groups, count, weight, bias, eps, silu, out);
}

}  // namespace k5::cuda
