#include "models/vae_common/vae_blocks.h"

namespace k5::vae {

Tensor WeightReader::get(const std::string& name, const Shape& shape) const {
  K5_CHECK(checkpoint_.contains(name), "VAE weights ", checkpoint_.path(), ": missing tensor '", name, "'");
  Tensor stored = checkpoint_.tensor(name);
  K5_CHECK(stored.shape() == shape, "VAE weights ", checkpoint_.path(), ": tensor '", name, "' is ",
           shape_string(stored.shape()), ", expected ", shape_string(shape));
  Tensor f32 = Tensor::empty(DType::F32, shape);
  f32.copy_from(stored);
  return f32.to_device(device_);
}

Conv load_conv(const WeightReader& weights, const std::string& prefix, int64_t in_channels, int64_t out_channels,
               std::array<int64_t, 3> kernel, int stored_dims) {
  const Shape full{out_channels, in_channels, kernel[0], kernel[1], kernel[2]};
  Shape stored = full;
  if (stored_dims == 4) stored = {out_channels, in_channels, kernel[1], kernel[2]};
  if (stored_dims == 2) stored = {out_channels, in_channels};
  Conv conv;
  conv.weight = weights.get(prefix + "weight", stored).reshape(full);
  conv.bias = weights.get(prefix + "bias", {out_channels});
  return conv;
}

Tensor conv_forward(Context& ctx, const Conv& conv, const Tensor& x, const ops::ConvGeometry& geometry,
                    const Tensor* residual) {
  Tensor out =
      Tensor::empty(DType::F32, ops::conv3d_output_shape(x.shape(), conv.weight.shape(), geometry), x.device());
  if (residual) {
    K5_CHECK(residual->shape() == out.shape(), "VAE residual ", shape_string(residual->shape()),
             " does not match the convolution output ", shape_string(out.shape()));
    ops::copy(ctx, *residual, out);
  }
  ops::conv3d(ctx, x, conv.weight, &conv.bias, geometry, out, residual != nullptr);
  return out;
}

Tensor conv_forward(Context& ctx, const Conv& conv, const Tensor& x, ConvStyle style, std::array<int, 3> stride,
                    const Tensor* residual) {
  const int kt = int(conv.weight.size(2)), kh = int(conv.weight.size(3)), kw = int(conv.weight.size(4));
  ops::ConvGeometry geometry;
  if (style == ConvStyle::causal) {
    geometry = ops::causal_conv_geometry(kt, kh, kw, stride);
  } else {
    geometry.stride = stride;
    geometry.pad_before = {kt / 2, kh / 2, kw / 2};
    geometry.pad_after = geometry.pad_before;
  }
  return conv_forward(ctx, conv, x, geometry, residual);
}

GroupNorm load_group_norm(const WeightReader& weights, const std::string& prefix, int64_t channels, int groups,
                          float eps) {
  K5_CHECK(groups >= 1 && channels % groups == 0, "VAE config: ", channels, " channels at '", prefix,
           "' do not split into ", groups, " norm groups");
  GroupNorm norm;
  norm.weight = weights.get(prefix + "weight", {channels});
  norm.bias = weights.get(prefix + "bias", {channels});
  norm.groups = groups;
  norm.eps = eps;
  return norm;
}

Tensor group_norm_forward(Context& ctx, const GroupNorm& norm, const Tensor& x, bool silu) {
  Tensor out = Tensor::empty(DType::F32, x.shape(), x.device());
  ops::group_norm(ctx, x, norm.groups, &norm.weight, &norm.bias, norm.eps, silu, out);
  return out;
}

ResnetBlock load_resnet(const WeightReader& weights, const std::string& prefix, int64_t in_channels,
                        int64_t out_channels, int groups, ConvStyle style) {
  const bool causal = style == ConvStyle::causal;
  const std::string inner = causal ? ".conv." : ".";
  const int dims = causal ? 5 : 4;
  const std::array<int64_t, 3> kernel = causal ? std::array<int64_t, 3>{3, 3, 3} : std::array<int64_t, 3>{1, 3, 3};
  ResnetBlock block;
  block.norm1 = load_group_norm(weights, prefix + "norm1.", in_channels, groups, 1e-6f);
  block.conv1 = load_conv(weights, prefix + "conv1" + inner, in_channels, out_channels, kernel, dims);
  block.norm2 = load_group_norm(weights, prefix + "norm2.", out_channels, groups, 1e-6f);
  block.conv2 = load_conv(weights, prefix + "conv2" + inner, out_channels, out_channels, kernel, dims);
  if (in_channels != out_channels) {
    block.conv_shortcut = load_conv(weights, prefix + "conv_shortcut" + inner, in_channels, out_channels, {1, 1, 1}, dims);
  }
  return block;
}

Tensor resnet_forward(Context& ctx, const ResnetBlock& block, const Tensor& x, ConvStyle style) {
  Tensor hidden = group_norm_forward(ctx, block.norm1, x, /*silu=*/true);
  hidden = conv_forward(ctx, block.conv1, hidden, style);
  hidden = group_norm_forward(ctx, block.norm2, hidden, /*silu=*/true);
  Tensor shortcut = block.conv_shortcut ? conv_forward(ctx, *block.conv_shortcut, x, style) : x;
  return conv_forward(ctx, block.conv2, hidden, style, {1, 1, 1}, &shortcut);
}

MidAttention load_mid_attention(const WeightReader& weights, const std::string& prefix, int64_t channels, int groups) {
  MidAttention attention;
  attention.group_norm = load_group_norm(weights, prefix + "group_norm.", channels, groups, 1e-6f);
  attention.to_q = load_conv(weights, prefix + "to_q.", channels, channels, {1, 1, 1}, 2);
  attention.to_k = load_conv(weights, prefix + "to_k.", channels, channels, {1, 1, 1}, 2);
  attention.to_v = load_conv(weights, prefix + "to_v.", channels, channels, {1, 1, 1}, 2);
  attention.to_out = load_conv(weights, prefix + "to_out.0.", channels, channels, {1, 1, 1}, 2);
  return attention;
}

Tensor mid_attention_forward(Context& ctx, const MidAttention& attention, const Tensor& x, bool frame_causal) {
  // x: [C, T, H, W]; tokens are the columns of [C, T*H*W].
  const int64_t channels = x.size(0), frames = x.size(1), tokens = x.numel() / channels;
  const Tensor normed = group_norm_forward(ctx, attention.group_norm, x, /*silu=*/false);
  const Tensor q = conv_forward(ctx, attention.to_q, normed, ConvStyle::image).reshape({channels, tokens});
  const Tensor k = conv_forward(ctx, attention.to_k, normed, ConvStyle::image).reshape({channels, tokens});
  const Tensor v = conv_forward(ctx, attention.to_v, normed, ConvStyle::image).reshape({channels, tokens});
  Tensor attended = Tensor::empty(DType::F32, {channels, tokens}, x.device());
  ops::frame_causal_attention(ctx, q, k, v, frame_causal ? int(frames) : 1, attended);
  return conv_forward(ctx, attention.to_out, attended.reshape(x.shape()), ConvStyle::image, {1, 1, 1}, &x);
}

MidBlock load_mid_block(const WeightReader& weights, const std::string& prefix, int64_t channels, int groups,
                        bool add_attention, ConvStyle style) {
  MidBlock block;
  block.first = load_resnet(weights, prefix + "resnets.0.", channels, channels, groups, style);
  if (add_attention) block.attention = load_mid_attention(weights, prefix + "attentions.0.", channels, groups);
  block.second = load_resnet(weights, prefix + "resnets.1.", channels, channels, groups, style);
  return block;
}

Tensor mid_block_forward(Context& ctx, const MidBlock& block, const Tensor& x, ConvStyle style) {
  Tensor hidden = resnet_forward(ctx, block.first, x, style);
  if (block.attention) hidden = mid_attention_forward(ctx, *block.attention, hidden, style == ConvStyle::causal);
  return resnet_forward(ctx, block.second, hidden, style);
}

UpsampleConv make_upsample_conv(const Conv& conv, int factor_t, int factor_hw, ConvStyle style) {
  K5_CHECK((factor_t == 1 || factor_t == 2) && (factor_hw == 1 || factor_hw == 2),
           "VAE upsampler: factors must be 1 or 2");
  const bool causal = style == ConvStyle::causal;
  K5_CHECK(factor_t == 1 || causal, "VAE upsampler: temporal upsampling needs the causal style");
  // Per axis: which original taps each new tap sums, the padding of the un-upsampled input and where the
  // phase's outputs land. Output 2i sees inputs (i-1, i, i) and 2i+1 sees (i, i, i+1); in time (causal, first
  // frame alone) output frame 2k sees (k-1, k, k) and 2k+1 sees (k, k, k+1).
  struct AxisPhase {
    std::vector<std::vector<int>> taps;
    int pad_before, pad_after;
    int64_t offset, step;
  };
  const auto phases_for = [](int factor, int kernel, bool causal_time) -> std::vector<AxisPhase> {
    if (kernel == 1) return {{{{0}}, 0, 0, 0, 1}};
    if (factor == 1) return {{{{0}, {1}, {2}}, causal_time ? 2 : 1, causal_time ? 0 : 1, 0, 1}};
    return {{{{0}, {1, 2}}, 1, 0, 0, 2}, {{{0, 1}, {2}}, 0, causal_time ? 0 : 1, 1, 2}};
  };
  const Tensor& w = conv.weight;
  const int64_t out_channels = w.size(0), in_channels = w.size(1);
  const int64_t kt0 = w.size(2), kh0 = w.size(3), kw0 = w.size(4);
  K5_CHECK(kh0 == 3 && kw0 == 3 && (kt0 == 3 || (kt0 == 1 && !causal)), "VAE upsampler: unsupported kernel ",
           shape_string(w.shape()));
  // The phase kernels are summed on the host (once, at load) and placed where the weight lives.
  const Tensor host_weight = w.to_device(Device::CPU);
  const float* source = host_weight.data<float>();
  UpsampleConv upsample;
  upsample.factor_t = factor_t;
  upsample.factor_hw = factor_hw;
  upsample.first_frame_alone = causal;
  for (const AxisPhase& pt : phases_for(factor_t, int(kt0), causal)) {
    for (const AxisPhase& ph : phases_for(factor_hw, 3, false)) {
      for (const AxisPhase& pw : phases_for(factor_hw, 3, false)) {
        const int64_t kt = int64_t(pt.taps.size()), kh = int64_t(ph.taps.size()), kw = int64_t(pw.taps.size());
        Tensor kernel = Tensor::empty(DType::F32, {out_channels, in_channels, kt, kh, kw});
        float* dst = kernel.data<float>();
        for (int64_t oc = 0; oc < out_channels * in_channels; ++oc)
          for (int64_t a = 0; a < kt; ++a)
            for (int64_t b = 0; b < kh; ++b)
              for (int64_t d = 0; d < kw; ++d) {
                float sum = 0.0f;
                for (int ta : pt.taps[size_t(a)])
                  for (int tb : ph.taps[size_t(b)])
                    for (int td : pw.taps[size_t(d)]) sum += source[((oc * kt0 + ta) * kh0 + tb) * kw0 + td];
                dst[((oc * kt + a) * kh + b) * kw + d] = sum;
              }
        UpsampleConv::Phase phase;
        phase.conv.weight = kernel.to_device(w.device());
        phase.conv.bias = conv.bias;
        phase.geometry.pad_mode = causal ? ops::PadMode::replicate : ops::PadMode::zeros;
        phase.geometry.pad_before = {pt.pad_before, ph.pad_before, pw.pad_before};
        phase.geometry.pad_after = {pt.pad_after, ph.pad_after, pw.pad_after};
        phase.offset = {pt.offset, ph.offset, pw.offset};
        phase.step = {pt.step, ph.step, pw.step};
        upsample.phases.push_back(std::move(phase));
      }
    }
  }
  return upsample;
}

Tensor upsample_conv_forward(Context& ctx, const UpsampleConv& upsample, const Tensor& x) {
  const Shape upsampled = ops::upsample_nearest_shape(x.shape(), upsample.factor_t, upsample.factor_hw,
                                                      upsample.factor_hw, upsample.first_frame_alone);
  Tensor out = Tensor::empty(DType::F32, {upsample.phases.front().conv.out_channels(), upsampled[1], upsampled[2],
                                          upsampled[3]},
                             x.device());
  for (const UpsampleConv::Phase& phase : upsample.phases) {
    // The odd-frame phase needs two input frames; a single frame upsamples to a single frame.
    if (phase.offset[0] == 1 && x.size(1) < 2) continue;
    const Tensor part = conv_forward(ctx, phase.conv, x, phase.geometry);
    ops::place_strided(ctx, part, phase.offset, phase.step, out);
  }
  return out;
}

Tensor batch_item(const Tensor& batch, int64_t index) {
  Tensor item = Tensor::empty(DType::F32, Shape(batch.shape().begin() + 1, batch.shape().end()));
  item.copy_from(batch.select(0, index));
  return item;
}

}  // namespace k5::vae
