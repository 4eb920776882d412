// Convolution-network ops for the VAEs: 3D/2D convolution, GroupNorm (+ fused SiLU), nearest upsampling and
// the channel-major attention of the VAE mid-blocks. All F32, one batch item at a time, channel-major
// activations ([C, T, H, W]; images are [C, 1, H, W]) as PyTorch stores them.
#pragma once

#include <array>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"

namespace k5::ops {

enum class PadMode { zeros, replicate };

// Padding and stride per axis (T, H, W). Replicate padding clamps the index into the input (F.pad
// mode="replicate"); zero padding reads zeros outside.
struct ConvGeometry {
  std::array<int, 3> stride{1, 1, 1};
  std::array<int, 3> pad_before{0, 0, 0};
  std::array<int, 3> pad_after{0, 0, 0};
  PadMode pad_mode = PadMode::zeros;
};

// The HunyuanVideo causal conv: time padded by KT-1 frames at the front only, space by K/2 on both sides,
// replicate mode (F.pad(x, (kw/2, kw/2, kh/2, kh/2, kt-1, 0), mode="replicate")).
ConvGeometry causal_conv_geometry(int kt, int kh, int kw, std::array<int, 3> stride = {1, 1, 1});

// [O, T', H', W'] for x [C, T, H, W] and weight [O, C, KT, KH, KW].
Shape conv3d_output_shape(const Shape& x, const Shape& weight, const ConvGeometry& geometry);

// out[o, t, h, w] = bias[o] + sum_{c, kt, kh, kw} weight[o, c, kt, kh, kw] * x_padded[c, t*st + kt, h*sh + kh,
// w*sw + kw]. x: [C, T, H, W] F32 contiguous; weight: [O, C, KT, KH, KW] F32 contiguous; bias: [O] F32 or null;
// out: [O, T', H', W'] F32 contiguous (conv3d_output_shape). With `accumulate` the result is added to out
// (a fused residual connection). out must not alias x. Float32 arithmetic, except on the GPU in Precision::bf16,
// where the products are TF32 (tensor cores; the official VAE runs in float16).
void conv3d(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const ConvGeometry& geometry,
            Tensor& out, bool accumulate = false);

// GroupNorm over x [C, ...] (channels first, one batch item): statistics over each group of C/groups
// channels and all remaining positions, then the per-channel affine (weight/bias [C] or null), then SiLU
// when `silu` is set. Statistics in double precision. out may alias x.
void group_norm(Context& ctx, const Tensor& x, int groups, const Tensor* weight, const Tensor* bias, float eps,
                bool silu, Tensor& out);

// The statistics of group_norm, separable: chunks of one activation (e.g. its frames, measured as they are
// computed) each give their moments, and merge() combines them exactly (Chan et al.'s pairwise update).
struct GroupMoments {
  int64_t count = 0;         // values per group
  std::vector<double> mean;  // [groups]
  std::vector<double> m2;    // [groups] sum of squared deviations from the mean
  void merge(const GroupMoments& other);
};
GroupMoments group_moments(Context& ctx, const Tensor& x, int groups);
// group_norm with given statistics; x may be any chunk of the activation they were measured on.
void group_norm_apply(Context& ctx, const Tensor& x, const GroupMoments& moments, const Tensor* weight,
                      const Tensor* bias, float eps, bool silu, Tensor& out);

// Nearest upsampling of x [C, T, H, W] by integer factors. With `first_frame_alone` frame 0 is upsampled in
// space only and frames 1.. in time and space (the HunyuanVideo causal upsampler):
// T' = 1 + factor_t * (T - 1); otherwise T' = factor_t * T.
Shape upsample_nearest_shape(const Shape& x, int factor_t, int factor_h, int factor_w, bool first_frame_alone);
void upsample_nearest(Context& ctx, const Tensor& x, int factor_t, int factor_h, int factor_w, bool first_frame_alone,
                      Tensor& out);

// Strided placement: out[o, t0 + st*t, h0 + sh*h, w0 + sw*w] = x[o, t, h, w] for all of x (both F32
// contiguous [C, ...]); other positions of out are untouched. Used to interleave the phases of an
// upsampling convolution computed per output phase.
void place_strided(Context& ctx, const Tensor& x, std::array<int64_t, 3> offset, std::array<int64_t, 3> step,
                   Tensor& out);

// Single-head attention on channel-major tokens: q, k, v: [D, L] (token l is column l), out: [D, L]
// (contiguous, must not alias q/k/v). The L tokens form `frames` equal groups of consecutive tokens; a query of
// frame f sees the keys of frames 0..f (the HunyuanVideo mid-block mask). frames = 1 is full attention.
// Softmax in float32; scale 0 means 1/sqrt(D).
void frame_causal_attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, int frames, Tensor& out,
                            float scale = 0.0f);

// destination = source: same shape (rank <= 5), F32, any strides (no overlap), both on one device. The VAEs cut,
// assemble and re-lay tiles and frames with it without leaving the device.
void copy(Context& ctx, const Tensor& source, Tensor& destination);

// The official tile blend (diffusers' blend_v / blend_h / blend_t), in place on `tile`: along `axis`
// (1 = T, 2 = H, 3 = W), tile[i] = previous[-e + i] * (1 - i/e) + tile[i] * (i/e) for i < e,
// e = min(previous.size(axis), tile.size(axis), extent). Both contiguous F32 [C, T, H, W], equal off `axis`.
void blend(Context& ctx, const Tensor& previous, Tensor& tile, int axis, int64_t extent);

}  // namespace k5::ops
