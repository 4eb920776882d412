// CPU kernels behind src/ops/conv.h (see there for the contracts; arguments are validated by the op layer).
#pragma once

#include "core/context.h"
#include "core/tensor.h"
#include "ops/conv.h"

namespace k5::cpu {

// im2col over a band of output rows + one SGEMM (oneDNN) per band; 1x1x1 stride-1 convs are a plain GEMM.
void conv3d(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const ops::ConvGeometry& geometry,
            Tensor& out, bool accumulate);
// The same through oneDNN's convolution primitive (see conv_dnnl.cpp); conv3d picks it unless K5_CONV=im2col.
void conv3d_dnnl(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias,
                 const ops::ConvGeometry& geometry, Tensor& out, bool accumulate);
ops::GroupMoments group_moments(Context& ctx, const Tensor& x, int groups);
void group_norm_apply(Context& ctx, const Tensor& x, const ops::GroupMoments& moments, const Tensor* weight,
                      const Tensor* bias, float eps, bool silu, Tensor& out);
void upsample_nearest(Context& ctx, const Tensor& x, int factor_t, int factor_h, int factor_w, bool first_frame_alone,
                      Tensor& out);
void place_strided(Context& ctx, const Tensor& x, std::array<int64_t, 3> offset, std::array<int64_t, 3> step,
                   Tensor& out);
void frame_causal_attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, int frames, Tensor& out,
                            float scale);
// VAE tiling (vae_tiling.cpp).
void copy(Context& ctx, const Tensor& source, Tensor& destination);
void blend(Context& ctx, const Tensor& previous, Tensor& tile, int axis, int64_t extent);

}  // namespace k5::cpu
