// Building blocks shared by the HunyuanVideo causal 3D VAE and the FLUX (AutoencoderKL) 2D VAE: both are
// GroupNorm/SiLU resnets around convolutions with a single-head attention in the mid-block. Activations are
// one batch item, channel-major: [C, T, H, W] (images: T = 1). Weights are held as F32 on the device the
// reader puts them on; every activation is made on its input's device, so the same code runs on the CPU and
// the GPU (allocated per activation, not from the Context's arena: each layer frees its input as it goes).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "ops/conv.h"

namespace k5::vae {

// How a kernel-k convolution pads: `causal` is HunyuanVideoCausalConv3d (replicate; time at the front only);
// `image` is nn.Conv2d(padding=k/2) with zeros.
enum class ConvStyle { causal, image };

// Reads weights by name, converting to contiguous F32, checking the shape and placing them on `device`.
class WeightReader {
 public:
  explicit WeightReader(const Checkpoint& checkpoint, Device device = Device::CPU)
      : checkpoint_(checkpoint), device_(device) {}
  Tensor get(const std::string& name, const Shape& shape) const;
  bool contains(const std::string& name) const { return checkpoint_.contains(name); }

 private:
  const Checkpoint& checkpoint_;
  Device device_;
};

struct Conv {
  Tensor weight;  // [O, C, KT, KH, KW] (2D weights get KT = 1)
  Tensor bias;    // [O]
  int64_t in_channels() const { return weight.size(1); }
  int64_t out_channels() const { return weight.size(0); }
};

// `prefix` + "weight"/"bias"; the stored weight is 5D for 3D convs, 4D for 2D convs, 2D for linear layers
// (a linear layer on channel-major tokens is a 1x1 convolution).
Conv load_conv(const WeightReader& weights, const std::string& prefix, int64_t in_channels, int64_t out_channels,
               std::array<int64_t, 3> kernel, int stored_dims);

// x: [C, T, H, W] -> [O, T', H', W'] with the style's padding; adds `residual` (same shape as the result) when given.
Tensor conv_forward(Context& ctx, const Conv& conv, const Tensor& x, ConvStyle style,
                    std::array<int, 3> stride = {1, 1, 1}, const Tensor* residual = nullptr);
// Explicit geometry (FLUX's asymmetric downsampling padding).
Tensor conv_forward(Context& ctx, const Conv& conv, const Tensor& x, const ops::ConvGeometry& geometry,
                    const Tensor* residual = nullptr);

struct GroupNorm {
  Tensor weight, bias;  // [C]
  int groups = 32;
  float eps = 1e-6f;
};
GroupNorm load_group_norm(const WeightReader& weights, const std::string& prefix, int64_t channels, int groups,
                          float eps);
Tensor group_norm_forward(Context& ctx, const GroupNorm& norm, const Tensor& x, bool silu);

// norm1 -> SiLU -> conv1 -> norm2 -> SiLU -> conv2, plus the (1x1-projected when channels change) input.
struct ResnetBlock {
  GroupNorm norm1, norm2;
  Conv conv1, conv2;
  std::optional<Conv> conv_shortcut;
};
// Hunyuan convs sit one level down ("conv1.conv.weight"); FLUX convs do not ("conv1.weight").
ResnetBlock load_resnet(const WeightReader& weights, const std::string& prefix, int64_t in_channels,
                        int64_t out_channels, int groups, ConvStyle style);
Tensor resnet_forward(Context& ctx, const ResnetBlock& block, const Tensor& x, ConvStyle style);

// diffusers Attention(heads=1, residual_connection, group norm): x + to_out(attn(norm(x))). Tokens are the
// T*H*W positions; with `frame_causal` a token of frame f sees frames 0..f (HunyuanVideo), else all tokens.
struct MidAttention {
  GroupNorm group_norm;
  Conv to_q, to_k, to_v, to_out;
};
MidAttention load_mid_attention(const WeightReader& weights, const std::string& prefix, int64_t channels, int groups);
Tensor mid_attention_forward(Context& ctx, const MidAttention& attention, const Tensor& x, bool frame_causal);

// resnets[0] -> (attention -> resnets[1]).
struct MidBlock {
  ResnetBlock first;
  std::optional<MidAttention> attention;
  ResnetBlock second;
};
MidBlock load_mid_block(const WeightReader& weights, const std::string& prefix, int64_t channels, int groups,
                        bool add_attention, ConvStyle style);
Tensor mid_block_forward(Context& ctx, const MidBlock& block, const Tensor& x, ConvStyle style);

// Nearest upsampling followed by a convolution (HunyuanVideo's causal upsampler, FLUX's Upsample2D),
// computed per output phase on the input before upsampling: upsampled position u reads input floor(u / f),
// and padding (replicate or zeros) commutes with that, so phase (t%2, h%2, w%2) is a convolution of the
// un-upsampled input with a kernel whose taps are sums of the original taps (2 instead of 3 per upsampled
// axis): ~3.4x (time and space) or ~2.25x (space) fewer multiply-adds and no upsampled copy. The same sums as
// upsample-then-conv, up to float rounding.
struct UpsampleConv {
  struct Phase {
    Conv conv;                      // [O, C, KT', KH', KW']
    ops::ConvGeometry geometry;     // padding on the input before upsampling
    std::array<int64_t, 3> offset;  // where its outputs go in the upsampled grid
    std::array<int64_t, 3> step;
  };
  std::vector<Phase> phases;
  int factor_t = 1, factor_hw = 1;
  bool first_frame_alone = false;  // causal: frame 0 is upsampled in space only
};
// conv: [O, C, 3, 3, 3] (causal) or [O, C, 1, 3, 3] (image); factors 1 or 2.
UpsampleConv make_upsample_conv(const Conv& conv, int factor_t, int factor_hw, ConvStyle style);
// x: [C, T, H, W] -> [O, T', factor_hw H, factor_hw W] (T' = 1 + factor_t (T - 1) when causal, else factor_t T).
Tensor upsample_conv_forward(Context& ctx, const UpsampleConv& upsample, const Tensor& x);

// Batch helpers: item b of a [B, ...] host tensor as a contiguous tensor, and the reverse.
Tensor batch_item(const Tensor& batch, int64_t index);

}  // namespace k5::vae
