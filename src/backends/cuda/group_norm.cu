// GroupNorm (+ fused SiLU) on the GPU: the CUDA side of group_norm / group_moments / group_norm_apply in
// src/ops/conv.h. A group is a contiguous run of `count` = C/groups * positions values of x [C, ...]; it can
// hold ~10^8 values at full video size, so the statistics are accumulated in double (the CPU sums float
// lanes into double per 2048-value block; double throughout is at least as accurate). Two passes, as the CPU:
// the mean, then the squared deviations from it. Each pass splits every group into slices, one block per
// (slice, group) writing a partial sum, and a second kernel adds a group's partials in a fixed order, so the
// result is deterministic. The kernels are in group_norm.cuh.
#include <algorithm>
#include <vector>

#include "backends/cuda/check.h"
#include "backends/cuda/device.h"
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/group_norm.cuh"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launchers.h"

namespace k5::cuda {

namespace {

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
  const int64_t slice_length =
      std::max(kGroupNormMinSliceValues, (count + kGroupNormMaxSlices - 1) / kGroupNormMaxSlices);
  const int64_t slices = (count + slice_length - 1) / slice_length;
  const ScratchBuffer partial(size_t(groups * slices) * sizeof(double));
  double* mean = mean_and_m2;
  double* m2 = mean_and_m2 + groups;
  const dim3 grid{unsigned(slices), unsigned(groups)};
  group_partial_sums_kernel<<<grid, kGroupNormThreads>>>(x, count, slice_length, nullptr, partial.as<double>());
  K5_CUDA_CHECK_LAUNCH("group_partial_sums_kernel (sum)");
  group_finish_kernel<<<unsigned(groups), kGroupNormThreads>>>(partial.as<double>(), slices, 1.0 / double(count), mean);
  K5_CUDA_CHECK_LAUNCH("group_finish_kernel (mean)");
  group_partial_sums_kernel<<<grid, kGroupNormThreads>>>(x, count, slice_length, mean, partial.as<double>());
  K5_CUDA_CHECK_LAUNCH("group_partial_sums_kernel (squared deviations)");
  group_finish_kernel<<<unsigned(groups), kGroupNormThreads>>>(partial.as<double>(), slices, 1.0, m2);
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
  group_affine_kernel<<<grid_stride_blocks(channels, kGroupNormThreads), kGroupNormThreads>>>(
      mean_and_m2, mean_and_m2 + groups, double(count), eps, weight ? weight->data<float>() : nullptr,
      bias ? bias->data<float>() : nullptr, channels, channels / groups, scale, shift);
  K5_CUDA_CHECK_LAUNCH("group_affine_kernel");
  const int64_t total = x.numel(), positions = total / channels;
  if (silu)
    group_norm_apply_kernel<true><<<grid_stride_blocks(total, kGroupNormThreads), kGroupNormThreads>>>(
        x.data<float>(), scale, shift, positions, total, out.data<float>());
  else
    group_norm_apply_kernel<false><<<grid_stride_blocks(total, kGroupNormThreads), kGroupNormThreads>>>(
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
