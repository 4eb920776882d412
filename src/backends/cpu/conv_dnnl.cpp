// Convolution through oneDNN's convolution primitive (direct JIT kernels on blocked layouts, what PyTorch's
// CPU conv uses). Replicate padding has no oneDNN equivalent, so that input is padded into a copy first;
// zero padding is passed to the primitive. Plain [C, T, H, W] tensors are reordered to the primitive's
// preferred layout and back around each call.
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <cstring>
#include <memory>

#include "backends/cpu/conv.h"

namespace k5::cpu {
namespace {

// x [C, T, H, W] -> padded channels-last [T + pt0 + pt1, H + ph0 + ph1, W + pw0 + pw1, C] with edge values
// repeated (replicate) or zeros: the layout oneDNN's direct kernels read, so the padding and the layout change
// are one pass over the input instead of two.
void pad_to_channels_last(Context& ctx, const Tensor& x, const ops::ConvGeometry& g, float* dst) {
  const int64_t channels = x.size(0), frames = x.size(1), height = x.size(2), width = x.size(3);
  const int64_t pt = g.pad_before[0], ph = g.pad_before[1], pw = g.pad_before[2];
  const int64_t out_frames = frames + pt + g.pad_after[0], out_height = height + ph + g.pad_after[1];
  const int64_t out_width = width + pw + g.pad_after[2];
  const bool replicate = g.pad_mode == ops::PadMode::replicate;
  const float* src = x.data<float>();
  const int64_t plane = frames * height * width;
  ctx.pool().parallel_for(0, out_frames * out_height, 1, [&](int64_t begin, int64_t end) {
    for (int64_t index = begin; index < end; ++index) {
      float* row = dst + index * out_width * channels;
      int64_t t = index / out_height - pt, h = index % out_height - ph;
      const bool outside = t < 0 || t >= frames || h < 0 || h >= height;
      if (outside && !replicate) {
        std::fill(row, row + out_width * channels, 0.0f);
        continue;
      }
      t = std::clamp<int64_t>(t, 0, frames - 1);
      h = std::clamp<int64_t>(h, 0, height - 1);
      const float* source = src + (t * height + h) * width;
      for (int64_t c = 0; c < channels; ++c) {
        const float* line = source + c * plane;
        for (int64_t w = 0; w < out_width; ++w) {
          const int64_t wi = w - pw;
          row[w * channels + c] = wi >= 0 && wi < width ? line[wi] : replicate ? line[std::clamp<int64_t>(wi, 0, width - 1)] : 0.0f;
        }
      }
    }
  });
}

}  // namespace

void conv3d_dnnl(Context& ctx, const Tensor& x_in, const Tensor& weight, const Tensor* bias,
                 const ops::ConvGeometry& geometry, Tensor& out, bool accumulate) {
  using namespace dnnl;
  using tag = memory::format_tag;
  using dt = memory::data_type;
  // The primitive sees an already padded input (padding 0).
  const memory::dims padding_l{0, 0, 0}, padding_r{0, 0, 0};
  const memory::dims src_dims{1, x_in.size(0), x_in.size(1) + geometry.pad_before[0] + geometry.pad_after[0],
                              x_in.size(2) + geometry.pad_before[1] + geometry.pad_after[1],
                              x_in.size(3) + geometry.pad_before[2] + geometry.pad_after[2]};
  const memory::dims weight_dims{weight.size(0), weight.size(1), weight.size(2), weight.size(3), weight.size(4)};
  const memory::dims bias_dims{weight.size(0)};
  const memory::dims dst_dims{1, out.size(0), out.size(1), out.size(2), out.size(3)};
  const memory::dims strides{geometry.stride[0], geometry.stride[1], geometry.stride[2]};

  engine cpu(engine::kind::cpu, 0);
  stream s(cpu);
  const convolution_forward::desc description(
      prop_kind::forward_inference, algorithm::convolution_direct, memory::desc(src_dims, dt::f32, tag::any),
      memory::desc(weight_dims, dt::f32, tag::any), memory::desc(bias_dims, dt::f32, tag::x),
      memory::desc(dst_dims, dt::f32, tag::any), strides, padding_l, padding_r);
  primitive_attr attributes;
  if (accumulate) {
    post_ops sum;
    sum.append_sum(1.0f);
    attributes.set_post_ops(sum);
  }
  const convolution_forward::primitive_desc pd(description, attributes, cpu);

  // Padded channels-last input, uninitialised until pad_to_channels_last fills it.
  std::unique_ptr<float[]> padded(new float[size_t(src_dims[1] * src_dims[2] * src_dims[3] * src_dims[4])]);
  pad_to_channels_last(ctx, x_in, geometry, padded.get());
  memory user_src({src_dims, dt::f32, tag::ndhwc}, cpu, padded.get());
  memory user_weights({weight_dims, dt::f32, tag::oidhw}, cpu, weight.raw());
  memory user_dst({dst_dims, dt::f32, tag::ncdhw}, cpu, out.raw());
  std::vector<float> zero_bias;
  memory bias_memory;
  if (bias) {
    bias_memory = memory({bias_dims, dt::f32, tag::x}, cpu, bias->raw());
  } else {
    zero_bias.assign(size_t(weight.size(0)), 0.0f);
    bias_memory = memory({bias_dims, dt::f32, tag::x}, cpu, zero_bias.data());
  }
  const auto prepare = [&](memory& user, const memory::desc& wanted) {
    if (user.get_desc() == wanted) return user;
    memory converted(wanted, cpu);
    reorder(user, converted).execute(s, user, converted);
    return converted;
  };
  memory src = prepare(user_src, pd.src_desc());
  memory weights = prepare(user_weights, pd.weights_desc());
  memory dst = pd.dst_desc() == user_dst.get_desc() ? user_dst : memory(pd.dst_desc(), cpu);
  if (accumulate && dst != user_dst) reorder(user_dst, dst).execute(s, user_dst, dst);
  convolution_forward(pd).execute(
      s, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_BIAS, bias_memory}, {DNNL_ARG_DST, dst}});
  if (dst != user_dst) reorder(dst, user_dst).execute(s, dst, user_dst);
  s.wait();
}

}  // namespace k5::cpu
