#include "ops/conv.h"

#include "backends/cpu/conv.h"
#include "backends/cuda/kernels.h"
#include "ops/dispatch.h"

namespace k5::ops {
namespace {

void check_f32_contiguous(const Tensor& t, const char* op, const char* name) {
  K5_CHECK(t.defined(), op, ": ", name, " is undefined");
  K5_CHECK(t.dtype() == DType::F32, op, ": ", name, " must be F32, got ", t.describe());
  K5_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous");
}

// An optional operand (bias, affine parameter) lives where the required ones do.
void check_beside(const Tensor* t, const Tensor& anchor, const char* op, const char* name) {
  if (t)
    K5_CHECK(t->device() == anchor.device(), op, ": ", name, " is on ", device_name(t->device()), ", the input on ",
             device_name(anchor.device()));
}

}  // namespace

ConvGeometry causal_conv_geometry(int kt, int kh, int kw, std::array<int, 3> stride) {
  ConvGeometry geometry;
  geometry.stride = stride;
  geometry.pad_before = {kt - 1, kh / 2, kw / 2};
  geometry.pad_after = {0, kh / 2, kw / 2};
  geometry.pad_mode = PadMode::replicate;
  return geometry;
}

Shape conv3d_output_shape(const Shape& x, const Shape& weight, const ConvGeometry& geometry) {
  K5_CHECK(x.size() == 4, "conv3d: input must be [C, T, H, W], got ", shape_string(x));
  K5_CHECK(weight.size() == 5, "conv3d: weight must be [O, C, KT, KH, KW], got ", shape_string(weight));
  K5_CHECK(weight[1] == x[0], "conv3d: input has ", x[0], " channels but the weight expects ", weight[1]);
  Shape out{weight[0], 0, 0, 0};
  for (int axis = 0; axis < 3; ++axis) {
    const int64_t padded = x[axis + 1] + geometry.pad_before[axis] + geometry.pad_after[axis];
    K5_CHECK(geometry.stride[axis] >= 1, "conv3d: stride must be >= 1");
    K5_CHECK(padded >= weight[axis + 2], "conv3d: input ", shape_string(x), " is smaller than the kernel ",
             shape_string(weight));
    out[axis + 1] = (padded - weight[axis + 2]) / geometry.stride[axis] + 1;
  }
  return out;
}

void conv3d(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const ConvGeometry& geometry,
            Tensor& out, bool accumulate) {
  check_f32_contiguous(x, "conv3d", "input");
  check_f32_contiguous(weight, "conv3d", "weight");
  check_f32_contiguous(out, "conv3d", "output");
  const Shape expected = conv3d_output_shape(x.shape(), weight.shape(), geometry);
  K5_CHECK(out.shape() == expected, "conv3d: output is ", shape_string(out.shape()), ", expected ",
           shape_string(expected));
  if (bias) {
    check_f32_contiguous(*bias, "conv3d", "bias");
    K5_CHECK(bias->numel() == weight.size(0), "conv3d: bias has ", bias->numel(), " values for ", weight.size(0),
             " output channels");
  }
  K5_CHECK(out.raw() != x.raw(), "conv3d: output must not alias the input");
  for (int axis = 0; axis < 3; ++axis) {
    K5_CHECK(geometry.pad_mode == PadMode::zeros || x.size(axis + 1) > 0, "conv3d: empty input");
  }
  check_beside(bias, x, "conv3d", "bias");
  if constexpr (kCudaBuild)
    if (on_cuda("conv3d", x, weight, out)) return cuda::conv3d(ctx, x, weight, bias, geometry, out, accumulate);
  device_of("conv3d", x, weight, out);
  cpu::conv3d(ctx, x, weight, bias, geometry, out, accumulate);
}

namespace {

void check_group_norm_arguments(const Tensor& x, int64_t groups, const Tensor* weight, const Tensor* bias,
                                const Tensor& out) {
  check_f32_contiguous(x, "group_norm", "input");
  check_f32_contiguous(out, "group_norm", "output");
  K5_CHECK(x.dim() >= 1 && out.shape() == x.shape(), "group_norm: output ", shape_string(out.shape()),
           " does not match the input ", shape_string(x.shape()));
  K5_CHECK(groups >= 1 && x.size(0) % groups == 0, "group_norm: ", x.size(0), " channels do not split into ", groups,
           " groups");
  for (const Tensor* t : {weight, bias}) {
    if (!t) continue;
    check_f32_contiguous(*t, "group_norm", "affine parameter");
    K5_CHECK(t->numel() == x.size(0), "group_norm: affine parameter has ", t->numel(), " values for ", x.size(0),
             " channels");
    check_beside(t, x, "group_norm", "affine parameter");
  }
}

}  // namespace

void GroupMoments::merge(const GroupMoments& other) {
  if (other.count == 0) return;
  if (count == 0) {
    *this = other;
    return;
  }
  K5_CHECK(mean.size() == other.mean.size(), "group_norm: merging moments of ", mean.size(), " and ",
           other.mean.size(), " groups");
  const double n = double(count), m = double(other.count), total = n + m;
  for (size_t g = 0; g < mean.size(); ++g) {
    const double delta = other.mean[g] - mean[g];
    mean[g] += delta * m / total;
    m2[g] += other.m2[g] + delta * delta * n * m / total;
  }
  count += other.count;
}

GroupMoments group_moments(Context& ctx, const Tensor& x, int groups) {
  check_group_norm_arguments(x, groups, nullptr, nullptr, x);
  if constexpr (kCudaBuild)
    if (on_cuda("group_moments", x)) return cuda::group_moments(ctx, x, groups);
  device_of("group_moments", x);
  return cpu::group_moments(ctx, x, groups);
}

void group_norm_apply(Context& ctx, const Tensor& x, const GroupMoments& moments, const Tensor* weight,
                      const Tensor* bias, float eps, bool silu, Tensor& out) {
  check_group_norm_arguments(x, int64_t(moments.mean.size()), weight, bias, out);
  K5_CHECK(moments.count > 0 && moments.m2.size() == moments.mean.size(), "group_norm: no statistics");
  if constexpr (kCudaBuild)
    if (on_cuda("group_norm_apply", x, out))
      return cuda::group_norm_apply(ctx, x, moments, weight, bias, eps, silu, out);
  device_of("group_norm_apply", x, out);
  cpu::group_norm_apply(ctx, x, moments, weight, bias, eps, silu, out);
}

void group_norm(Context& ctx, const Tensor& x, int groups, const Tensor* weight, const Tensor* bias, float eps,
                bool silu, Tensor& out) {
  check_group_norm_arguments(x, groups, weight, bias, out);
  if constexpr (kCudaBuild)
    if (on_cuda("group_norm", x, out)) return cuda::group_norm(ctx, x, groups, weight, bias, eps, silu, out);
  device_of("group_norm", x, out);
  cpu::group_norm_apply(ctx, x, cpu::group_moments(ctx, x, groups), weight, bias, eps, silu, out);
}

Shape upsample_nearest_shape(const Shape& x, int factor_t, int factor_h, int factor_w, bool first_frame_alone) {
  K5_CHECK(x.size() == 4, "upsample_nearest: input must be [C, T, H, W], got ", shape_string(x));
  K5_CHECK(factor_t >= 1 && factor_h >= 1 && factor_w >= 1, "upsample_nearest: factors must be >= 1");
  K5_CHECK(x[1] >= 1, "upsample_nearest: input has no frames");
  const int64_t frames = first_frame_alone ? 1 + factor_t * (x[1] - 1) : factor_t * x[1];
  return {x[0], frames, x[2] * factor_h, x[3] * factor_w};
}

void upsample_nearest(Context& ctx, const Tensor& x, int factor_t, int factor_h, int factor_w, bool first_frame_alone,
                      Tensor& out) {
  check_f32_contiguous(x, "upsample_nearest", "input");
  check_f32_contiguous(out, "upsample_nearest", "output");
  const Shape expected = upsample_nearest_shape(x.shape(), factor_t, factor_h, factor_w, first_frame_alone);
  K5_CHECK(out.shape() == expected, "upsample_nearest: output is ", shape_string(out.shape()), ", expected ",
           shape_string(expected));
  if constexpr (kCudaBuild)
    if (on_cuda("upsample_nearest", x, out))
      return cuda::upsample_nearest(ctx, x, factor_t, factor_h, factor_w, first_frame_alone, out);
  device_of("upsample_nearest", x, out);
  cpu::upsample_nearest(ctx, x, factor_t, factor_h, factor_w, first_frame_alone, out);
}

void place_strided(Context& ctx, const Tensor& x, std::array<int64_t, 3> offset, std::array<int64_t, 3> step,
                   Tensor& out) {
  check_f32_contiguous(x, "place_strided", "input");
  check_f32_contiguous(out, "place_strided", "output");
  K5_CHECK(x.dim() == 4 && out.dim() == 4 && x.size(0) == out.size(0), "place_strided: ", shape_string(x.shape()),
           " into ", shape_string(out.shape()));
  for (int axis = 0; axis < 3; ++axis) {
    K5_CHECK(step[axis] >= 1 && offset[axis] >= 0 &&
                 (x.size(axis + 1) == 0 || offset[axis] + step[axis] * (x.size(axis + 1) - 1) < out.size(axis + 1)),
             "place_strided: ", shape_string(x.shape()), " does not fit ", shape_string(out.shape()), " on axis ",
             axis + 1);
  }
  if constexpr (kCudaBuild)
    if (on_cuda("place_strided", x, out)) return cuda::place_strided(ctx, x, offset, step, out);
  device_of("place_strided", x, out);
  cpu::place_strided(ctx, x, offset, step, out);
}

void frame_causal_attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, int frames, Tensor& out,
                            float scale) {
  for (const Tensor* t : {&q, &k, &v, static_cast<const Tensor*>(&out)}) check_f32_contiguous(*t, "frame_causal_attention", "tensor");
  K5_CHECK(q.dim() == 2 && k.shape() == q.shape() && v.shape() == q.shape() && out.shape() == q.shape(),
           "frame_causal_attention: q, k, v, out must all be [D, L], got ", shape_string(q.shape()), ", ",
           shape_string(k.shape()), ", ", shape_string(v.shape()), ", ", shape_string(out.shape()));
  K5_CHECK(frames >= 1 && q.size(1) % frames == 0, "frame_causal_attention: ", q.size(1),
           " tokens do not split into ", frames, " frames");
  if constexpr (kCudaBuild)
    if (on_cuda("frame_causal_attention", q, k, v, out))
      return cuda::frame_causal_attention(ctx, q, k, v, frames, out, scale);
  device_of("frame_causal_attention", q, k, v, out);
  cpu::frame_causal_attention(ctx, q, k, v, frames, out, scale);
}

void copy(Context& ctx, const Tensor& source, Tensor& destination) {
  K5_CHECK(source.defined() && destination.defined(), "copy: undefined operand");
  K5_CHECK(source.shape() == destination.shape(), "copy: ", source.describe(), " into ", destination.describe());
  K5_CHECK(source.dtype() == DType::F32 && destination.dtype() == DType::F32, "copy: F32 only, got ",
           source.describe(), " into ", destination.describe());
  K5_CHECK(source.dim() <= 5, "copy: rank ", source.dim(), " (at most 5)");
  if constexpr (kCudaBuild)
    if (on_cuda("copy", source, destination)) return cuda::copy(ctx, source, destination);
  device_of("copy", source, destination);
  cpu::copy(ctx, source, destination);
}

void blend(Context& ctx, const Tensor& previous, Tensor& tile, int axis, int64_t extent) {
  check_f32_contiguous(previous, "blend", "previous tile");
  check_f32_contiguous(tile, "blend", "tile");
  K5_CHECK(previous.dim() == 4 && tile.dim() == 4 && axis >= 1 && axis <= 3,
           "blend: tiles must be [C, T, H, W] and the axis 1..3, got ", previous.describe(), ", ", tile.describe(),
           ", axis ", axis);
  for (int other = 0; other < 4; ++other) {
    K5_CHECK(other == axis || previous.size(other) == tile.size(other), "VAE tile blend: tiles ",
             shape_string(previous.shape()), " and ", shape_string(tile.shape()), " do not line up along axis ",
             other);
  }
  if constexpr (kCudaBuild)
    if (on_cuda("blend", previous, tile)) return cuda::blend(ctx, previous, tile, axis, extent);
  device_of("blend", previous, tile);
  cpu::blend(ctx, previous, tile, axis, extent);
}

}  // namespace k5::ops
