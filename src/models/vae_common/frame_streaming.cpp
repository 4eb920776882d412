#include "models/vae_common/frame_streaming.h"

#include <algorithm>

namespace k5::vae {
namespace {

// dst[c, dst_frame, dst_row:dst_row+rows, :] = src[c, src_frame, row0:row0+rows, :] for every channel c; src
// and dst are [C, T, H, W] with the same C and W, on one device.
void copy_rows(Context& ctx, const Tensor& src, int64_t src_frame, int64_t row0, Tensor& dst, int64_t dst_frame,
               int64_t rows, int64_t dst_row = 0) {
  const Tensor from = src.slice(1, src_frame, src_frame + 1).slice(2, row0, row0 + rows);
  Tensor to = dst.slice(1, dst_frame, dst_frame + 1).slice(2, dst_row, dst_row + rows);
  ops::copy(ctx, from, to);
}

// The statistics of a norm group over every frame of `input`.
ops::GroupMoments frame_moments(Context& ctx, FrameSource& input, int groups) {
  ops::GroupMoments moments;
  for (int64_t t = 0; t < input.frames(); ++t) moments.merge(ops::group_moments(ctx, input.frame(ctx, t), groups));
  return moments;
}

struct NormWithMoments {
  const GroupNorm& norm;
  const ops::GroupMoments& moments;
};

// Output rows [row0, row1) of a convolution over a window of KT frames (`inputs`, oldest first, each
// [C, 1, H, W]; the window is the kernel's whole time extent, so one output frame): rows of the output read
// input rows r - pad_top .. r - pad_top + KH - 1, and rows outside the image are the replicate padding, as in
// the whole convolution. The inputs go through GroupNorm + SiLU first when `norm` is given; `residual` (rows
// [row0, row1) of an [O, 1, H', W'] frame) is added when given. Returns [O, 1, row1 - row0, W'].
Tensor conv_rows(Context& ctx, const Conv& conv, const std::vector<Tensor>& inputs, int pad_top,
                 std::array<int, 2> pad_width, int64_t row0, int64_t row1, const NormWithMoments* norm,
                 const Tensor* residual) {
  const int64_t kernel_t = conv.weight.size(2), kernel_h = conv.weight.size(3);
  K5_CHECK(int64_t(inputs.size()) == kernel_t, "VAE frame streaming: ", inputs.size(), " input frames for a ",
           kernel_t, "-frame kernel");
  const int64_t channels = inputs[0].size(0), height = inputs[0].size(2), width = inputs[0].size(3);
  const int64_t first = row0 - pad_top, last = row1 - pad_top + kernel_h - 1;  // input rows [first, last)
  const int64_t in0 = std::max<int64_t>(first, 0), in1 = std::min(last, height);
  Tensor band = Tensor::empty(DType::F32, {channels, kernel_t, in1 - in0, width}, inputs[0].device());
  for (int64_t k = 0; k < kernel_t; ++k) copy_rows(ctx, inputs[size_t(k)], 0, in0, band, k, in1 - in0);
  if (norm) {
    ops::group_norm_apply(ctx, band, norm->moments, &norm->norm.weight, &norm->norm.bias, norm->norm.eps,
                          /*silu=*/true, band);
  }
  ops::ConvGeometry geometry;
  geometry.pad_mode = ops::PadMode::replicate;
  geometry.pad_before = {0, int(in0 - first), pad_width[0]};
  geometry.pad_after = {0, int(last - in1), pad_width[1]};
  Tensor residual_band;
  if (residual) {
    residual_band =
        Tensor::empty(DType::F32, {conv.out_channels(), 1, row1 - row0, residual->size(3)}, residual->device());
    copy_rows(ctx, *residual, 0, row0, residual_band, 0, row1 - row0);
  }
  return conv_forward(ctx, conv, band, geometry, residual ? &residual_band : nullptr);
}

// Rows per band for `channels` x `frames` input rows of `width` values.
int64_t band_rows(int64_t band_bytes, int64_t channels, int64_t frames, int64_t width, int64_t halo, int64_t height) {
  return std::clamp<int64_t>(band_bytes / (channels * frames * width * int64_t(sizeof(float))) - 2 * halo, 1, height);
}

// One output frame [O, 1, H, W] of a causal convolution (kernel KT x K x K, replicate padding) from its KT
// input frames, in bands of output rows.
Tensor causal_conv_frame(Context& ctx, const Conv& conv, const std::vector<Tensor>& inputs,
                         const NormWithMoments* norm, const Tensor* residual, int64_t band_bytes) {
  const int halo = int(conv.weight.size(3) / 2);
  const int64_t height = inputs[0].size(2), width = inputs[0].size(3);
  const int64_t rows = band_rows(band_bytes, inputs[0].size(0), int64_t(inputs.size()), width, halo, height);
  Tensor out = Tensor::empty(DType::F32, {conv.out_channels(), 1, height, width}, inputs[0].device());
  for (int64_t row0 = 0; row0 < height; row0 += rows) {
    const int64_t row1 = std::min(height, row0 + rows);
    const Tensor part = conv_rows(ctx, conv, inputs, halo, {halo, halo}, row0, row1, norm, residual);
    copy_rows(ctx, part, 0, 0, out, 0, row1 - row0, row0);
  }
  return out;
}

// Frames t-KT+1 .. t of `input` for a KT-frame causal kernel.
std::vector<Tensor> causal_window(Context& ctx, FrameSource& input, int64_t t, int64_t kernel_t) {
  std::vector<Tensor> window;
  for (int64_t k = kernel_t - 1; k >= 0; --k) window.push_back(input.frame(ctx, t - k));
  return window;
}

}  // namespace

StoredFrames::StoredFrames(Context& ctx, const Tensor& x)
    : channels_(x.size(0)), height_(x.size(2)), width_(x.size(3)), frames_(size_t(x.size(1))) {
  K5_CHECK(x.dim() == 4, "VAE frame streaming: activation must be [C, T, H, W], got ", shape_string(x.shape()));
  for (int64_t t = 0; t < x.size(1); ++t) {
    frames_[size_t(t)] = Tensor::empty(DType::F32, {x.size(0), 1, x.size(2), x.size(3)}, x.device());
    ops::copy(ctx, x.slice(1, t, t + 1), frames_[size_t(t)]);
  }
}

Tensor StoredFrames::frame(Context&, int64_t t) {
  const Tensor& stored = frames_[size_t(std::clamp<int64_t>(t, 0, frames() - 1))];
  K5_CHECK(stored.defined(), "VAE frame streaming: frame ", t, " was read after it was released");
  return stored;
}

void StoredFrames::set(int64_t t, Tensor frame) {
  height_ = frame.size(2);
  width_ = frame.size(3);
  frames_[size_t(t)] = std::move(frame);
}

void StoredFrames::release_before(int64_t t) {
  for (int64_t i = 0; i < std::min(t, frames()); ++i) frames_[size_t(i)] = Tensor();
}

UpsampledFrames::UpsampledFrames(const UpsampleConv& upsample, std::unique_ptr<StoredFrames> input,
                                 int64_t band_bytes)
    : upsample_(upsample), input_(std::move(input)), band_bytes_(band_bytes) {
  K5_CHECK(upsample.first_frame_alone, "VAE frame streaming needs the causal upsampler");
}

int64_t UpsampledFrames::channels() const { return upsample_.phases.front().conv.out_channels(); }

int64_t UpsampledFrames::frames() const { return 1 + upsample_.factor_t * (input_->frames() - 1); }

Tensor UpsampledFrames::frame(Context& ctx, int64_t t) {
  t = std::clamp<int64_t>(t, 0, frames() - 1);
  for (const auto& [index, frame] : recent_) {
    if (index == t) return frame;
  }
  const int64_t height = input_->height(), width = input_->width();
  Tensor out = Tensor::empty(DType::F32, {channels(), 1, height * upsample_.factor_hw, width * upsample_.factor_hw},
                             upsample_.phases.front().conv.weight.device());
  for (const UpsampleConv::Phase& phase : upsample_.phases) {
    // Output frame t belongs to the phases of its time offset; it is output `index` of such a phase, which
    // reads input frames index - pad_before .. (clamped: replicate padding).
    if (t % phase.step[0] != phase.offset[0]) continue;
    const int64_t index = t / phase.step[0], taps = phase.conv.weight.size(2);
    std::vector<Tensor> window;
    for (int64_t a = 0; a < taps; ++a) window.push_back(input_->frame(ctx, index - phase.geometry.pad_before[0] + a));
    const int64_t rows = band_rows(band_bytes_, input_->channels(), taps, width, 1, height);
    for (int64_t row0 = 0; row0 < height; row0 += rows) {
      const int64_t row1 = std::min(height, row0 + rows);
      const Tensor part = conv_rows(ctx, phase.conv, window, phase.geometry.pad_before[1],
                                    {phase.geometry.pad_before[2], phase.geometry.pad_after[2]}, row0, row1, nullptr,
                                    nullptr);
      ops::place_strided(ctx, part, {0, phase.offset[1] + row0 * phase.step[1], phase.offset[2]},
                         {1, phase.step[1], phase.step[2]}, out);
    }
  }
  if (recent_.size() == 3) recent_.erase(recent_.begin());
  recent_.emplace_back(t, out);
  return out;
}

void UpsampledFrames::release_before(int64_t t) {
  // Output frame t reads input frames from (t - 1) / 2 on when time doubles (2k: k-1, k; 2k+1: k, k+1), from
  // t - 2 on otherwise (a 3-frame causal kernel).
  if (t >= 1) input_->release_before(upsample_.factor_t == 2 ? (t - 1) / 2 : t - 2);
}

std::unique_ptr<StoredFrames> resnet_by_frames(Context& ctx, const ResnetBlock& block, FrameSource& input,
                                               int64_t band_bytes) {
  const int64_t frames = input.frames();
  const ops::GroupMoments moments1 = frame_moments(ctx, input, block.norm1.groups);
  const NormWithMoments norm1{block.norm1, moments1};
  const auto conv1_frame = [&](int64_t t) {
    return causal_conv_frame(ctx, block.conv1, causal_window(ctx, input, t, block.conv1.weight.size(2)), &norm1,
                             nullptr, band_bytes);
  };
  ops::GroupMoments moments2;
  for (int64_t t = 0; t < frames; ++t) moments2.merge(ops::group_moments(ctx, conv1_frame(t), block.norm2.groups));
  const NormWithMoments norm2{block.norm2, moments2};

  auto output = std::make_unique<StoredFrames>(block.conv2.out_channels(), frames);
  StoredFrames hidden(block.conv1.out_channels(), frames);  // conv1's frames, the last few kept
  for (int64_t t = 0; t < frames; ++t) {
    hidden.set(t, conv1_frame(t));
    const Tensor x = input.frame(ctx, t);
    const Tensor shortcut = block.conv_shortcut ? causal_conv_frame(ctx, *block.conv_shortcut, {x}, nullptr, nullptr, band_bytes) : x;
    output->set(t, causal_conv_frame(ctx, block.conv2, causal_window(ctx, hidden, t, block.conv2.weight.size(2)),
                                     &norm2, &shortcut, band_bytes));
    // The next frame's convolutions read frames t-1 and t (3-frame kernels) of the input and of conv1.
    input.release_before(t - 1);
    hidden.release_before(t - 1);
  }
  return output;
}

Tensor norm_conv_by_frames(Context& ctx, const GroupNorm& norm, const Conv& conv, FrameSource& input,
                           int64_t band_bytes) {
  const ops::GroupMoments moments = frame_moments(ctx, input, norm.groups);
  const NormWithMoments normalise{norm, moments};
  Tensor out;
  for (int64_t t = 0; t < input.frames(); ++t) {
    const Tensor frame =
        causal_conv_frame(ctx, conv, causal_window(ctx, input, t, conv.weight.size(2)), &normalise, nullptr, band_bytes);
    if (!out.defined())
      out = Tensor::empty(DType::F32, {frame.size(0), input.frames(), frame.size(2), frame.size(3)}, frame.device());
    copy_rows(ctx, frame, 0, 0, out, t, frame.size(2));
    input.release_before(t - 1);
  }
  return out;
}

}  // namespace k5::vae
