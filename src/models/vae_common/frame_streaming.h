// The causal (HunyuanVideo) VAE decoder run one frame at a time, so memory stays bounded at any video size.
//
// Decoded whole, a 17-frame 768x512 tile holds several activations of the full output size at once (~6 KB
// per output pixel-frame at the real channel widths, ~40 GB). Causal convolutions only look back (two frames
// for a 3x3x3 kernel), so the decoder can produce one output frame at a time — except that every GroupNorm
// needs statistics over all frames of its input. Those come from extra passes: a resnet measures norm1 on its
// input, runs conv1 over all frames once to measure norm2 (discarding them), then runs conv1 again and conv2
// for real. An upsampler's output (at full resolution the largest activation) is never stored: its frames are
// recomputed from the low-resolution input on every pass. Cost: ~1.6x the arithmetic of a whole-tile decode;
// memory: about the input and output of one resnet at full resolution plus a few frames (convolutions run on
// bands of rows). Same sums as the whole-tile path up to float rounding (per-frame statistics are merged).
#pragma once

#include <array>
#include <memory>
#include <utility>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "models/vae_common/vae_blocks.h"
#include "ops/conv.h"

namespace k5::vae {

// Convolutions run on bands of output rows whose input is at most this many bytes (the band, its padded copy
// inside the convolution and its output stay far below one full-resolution activation).
constexpr int64_t kDefaultBandBytes = int64_t(32) << 20;

// The frames of one activation [C, T, H, W], each a contiguous [C, 1, H, W] tensor.
class FrameSource {
 public:
  virtual ~FrameSource() = default;
  virtual int64_t channels() const = 0;
  virtual int64_t frames() const = 0;
  // Frame t, clamped into [0, frames) (the causal convolutions' replicate padding at the front).
  virtual Tensor frame(Context& ctx, int64_t t) = 0;
  // Frames before t will not be read again.
  virtual void release_before(int64_t t) { (void)t; }
};

// An activation held in memory, frame by frame, so it can be freed as it is consumed.
class StoredFrames : public FrameSource {
 public:
  StoredFrames(Context& ctx, const Tensor& x);  // x: [C, T, H, W], split into frames on its device
  StoredFrames(int64_t channels, int64_t frames) : channels_(channels), frames_(size_t(frames)) {}
  int64_t channels() const override { return channels_; }
  int64_t frames() const override { return int64_t(frames_.size()); }
  Tensor frame(Context& ctx, int64_t t) override;
  void release_before(int64_t t) override;
  void set(int64_t t, Tensor frame);
  int64_t height() const { return height_; }
  int64_t width() const { return width_; }

 private:
  int64_t channels_, height_ = 0, width_ = 0;
  std::vector<Tensor> frames_;
};

// The output of an upsampling convolution, computed frame by frame from its stored input when asked for;
// the last few frames are kept, so reading t-2, t-1, t for increasing t computes each frame once per pass.
class UpsampledFrames : public FrameSource {
 public:
  UpsampledFrames(const UpsampleConv& upsample, std::unique_ptr<StoredFrames> input,
                  int64_t band_bytes = kDefaultBandBytes);
  int64_t channels() const override;
  int64_t frames() const override;
  Tensor frame(Context& ctx, int64_t t) override;
  // Releases the input frames that no output frame from t on reads.
  void release_before(int64_t t) override;

 private:
  const UpsampleConv& upsample_;
  std::unique_ptr<StoredFrames> input_;
  int64_t band_bytes_;
  std::vector<std::pair<int64_t, Tensor>> recent_;
};

// A resnet block over the frames of `input` (norm1 statistics, a measuring pass of conv1 for norm2, then the
// output pass); the input's frames are released as the output pass goes.
std::unique_ptr<StoredFrames> resnet_by_frames(Context& ctx, const ResnetBlock& block, FrameSource& input,
                                               int64_t band_bytes = kDefaultBandBytes);

// GroupNorm + SiLU + causal convolution (the decoder's conv_norm_out / conv_out) -> [O, T, H, W].
Tensor norm_conv_by_frames(Context& ctx, const GroupNorm& norm, const Conv& conv, FrameSource& input,
                           int64_t band_bytes = kDefaultBandBytes);

}  // namespace k5::vae
