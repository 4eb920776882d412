// CUDA implementations behind the op layer (src/ops/*.h), with the CPU kernels' contracts: same shapes,
// strides, aliasing and BF16 rounding (src/backends/cpu/kernels.h). Operands live on the GPU; the work is
// queued on the default stream and the call returns before it finishes (copies back to the host wait).
// Plain C++ so the op layer can include it in any build; defined only in a CUDA build.
#pragma once

#include "core/context.h"
#include "core/tensor.h"
#include "ops/attention.h"
#include "ops/conv.h"
#include "ops/linear.h"
#include "ops/linear_int8.h"
#include "ops/rope.h"

namespace k5::cuda {

enum class Unary { silu, gelu_erf, gelu_tanh, quick_gelu };
void unary(Context& ctx, Unary function, const Tensor& x, Tensor& out);
void swiglu(Context& ctx, const Tensor& gate, const Tensor& up, Tensor& out);
enum class Binary { add, mul };
void binary(Context& ctx, Binary function, const Tensor& a, const Tensor& b, Tensor& out);
void scale(Context& ctx, const Tensor& x, float factor, Tensor& out);
void softmax(Context& ctx, const Tensor& x, Tensor& out);

void layer_norm(Context& ctx, const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, Tensor& out);
void rms_norm(Context& ctx, const Tensor& x, const Tensor* weight, float eps, Tensor& out);
void scale_shift_norm(Context& ctx, const Tensor& x, const Tensor& scale, const Tensor& shift, float eps, Tensor& out);
void gated_residual(Context& ctx, Tensor& x, const Tensor& h, const Tensor& gate);

// GEMMs through cuBLASLt (src/backends/cuda/linear.cpp).
void linear(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, Tensor& out,
            ops::Activation activation);
void matmul(Context& ctx, const Tensor& a, const Tensor& b, Tensor& out, bool accumulate);
// The int8 weight-only linear (linear_int8.cu): the weight is expanded to BF16 (Precision::bf16) or F32 in
// blocks of at most `expanded_budget_elements` (at least one row) and multiplied with linear() above.
inline constexpr int64_t kInt8ExpandedBudgetElements = int64_t(64) << 20;
void linear_int8(Context& ctx, const Tensor& x, const ops::Int8Weight& weight, const Tensor* bias, Tensor& out,
                 int64_t expanded_budget_elements = kInt8ExpandedBudgetElements);

// NABLA's block means (src/ops/pool.h; pool.cu).
void block_mean_pool(Context& ctx, const Tensor& x, int64_t block, Tensor& out);

// VAE ops (src/ops/conv.h): conv.cu, group_norm.cu, upsample.cu.
// conv3d as implicit GEMM: the input patches of a chunk of output positions are gathered (im2col) into a
// column buffer of at most `column_budget_bytes` (at least one position's patch), then multiplied by the
// weight matrix with cuBLASLt: in full float32, or with TF32 tensor-core products in Precision::bf16. Tests pass
// a small budget to exercise the chunking.
inline constexpr int64_t kConvColumnBudgetBytes = int64_t(256) << 20;
void conv3d(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const ops::ConvGeometry& geometry,
            Tensor& out, bool accumulate, int64_t column_budget_bytes = kConvColumnBudgetBytes);

// GroupNorm statistics in double on the device. group_moments returns them to the host (it waits for the
// GPU); group_norm keeps them on the device.
ops::GroupMoments group_moments(Context& ctx, const Tensor& x, int groups);
void group_norm_apply(Context& ctx, const Tensor& x, const ops::GroupMoments& moments, const Tensor* weight,
                      const Tensor* bias, float eps, bool silu, Tensor& out);
void group_norm(Context& ctx, const Tensor& x, int groups, const Tensor* weight, const Tensor* bias, float eps,
                bool silu, Tensor& out);

void upsample_nearest(Context& ctx, const Tensor& x, int factor_t, int factor_h, int factor_w, bool first_frame_alone,
                      Tensor& out);
void place_strided(Context& ctx, const Tensor& x, std::array<int64_t, 3> offset, std::array<int64_t, 3> step,
                   Tensor& out);

// Attention and rotary embeddings (src/ops/attention.h, src/ops/rope.h): attention.cu (+ attention_mma.cuh,
// attention_wgmma.cu/.cuh), rope.cu. Flash-attention style: float32 on CUDA cores; Precision::bf16 on tensor cores
// (wgmma on Hopper, mma.sync, WMMA). Head dim up to 128.
void attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, Tensor& out,
               const ops::AttentionOptions& options);
void block_sparse_attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& block_mask,
                            int block_size, Tensor& out, float scale);
int64_t nabla_select_blocks(Context& ctx, const Tensor& q_pool, const Tensor& k_pool, const Tensor& sta, double P,
                            Tensor& block_mask);
// In place on x [L, H, D]; cos, sin [L, D/2]. interleaved: pairs (2i, 2i+1), else (i, i + D/2). With `norm`,
// each head's D values are RMS-normalised first, in the same pass (one warp per head).
void rope(Context& ctx, Tensor& x, const Tensor& cos, const Tensor& sin, bool interleaved,
          const ops::HeadRmsNorm* norm = nullptr);

// VAE mid-block attention and tiling (src/ops/conv.h): vae_attention.cu, vae_tiling.cu.
// Frame-causal attention as two float32 cuBLASLt GEMMs per chunk of queries (scores, then values) around a
// softmax, the same computation as the CPU kernel; any channel count (the dense attention kernel stops at 128).
inline constexpr int64_t kFrameAttentionScoreBudgetBytes = int64_t(256) << 20;
void frame_causal_attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, int frames, Tensor& out,
                            float scale, int64_t score_budget_bytes = kFrameAttentionScoreBudgetBytes);
void copy(Context& ctx, const Tensor& source, Tensor& destination);
void blend(Context& ctx, const Tensor& previous, Tensor& tile, int axis, int64_t extent);

}  // namespace k5::cuda
