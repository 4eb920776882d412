// The VAE mid-block attention on the GPU (the CUDA side of ops::frame_causal_attention, src/ops/conv.h): the
// CPU kernel's computation (src/backends/cpu/conv_attention.cpp) with cuBLASLt GEMMs. The VAE's 512 channels
// are beyond the dense attention kernel's head-dim limit, and the tokens are columns of [D, L], so
// per chunk of `rows` queries of one frame (keys: the `visible` tokens of frames 0..f):
//
//   scores[visible, rows] (column-major: each query's scores contiguous) = K[:, :visible]^T Q[:, q0:q0+rows]
//   softmax of scale * scores per query                                   (float32, sum in double)
//   out[:, q0:q0+rows] = V[:, :visible] P^T                              (written in place, ld L)
//
// Queries are chunked so the score buffer stays within score_budget_bytes; one thread block per query (the softmax
// kernel is in vae_attention.cuh).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>

#include "backends/cuda/check.h"
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/gemm.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/vae_attention.cuh"

namespace k5::cuda {

namespace {

void gemm_or_fail(const Gemm& g, const char* what) {
  K5_CHECK(try_gemm(g), "frame_causal_attention: cuBLASLt has no algorithm for the ", what, " GEMM (", g.m, "x", g.n,
           "x", g.k, ")");
}

}  // namespace

void frame_causal_attention(Context&, const Tensor& q, const Tensor& k, const Tensor& v, int frames, Tensor& out,
                            float scale, int64_t score_budget_bytes) {
  const Tensor* const operands[] = {&q, &k, &v, &out};
  for (const Tensor* t : operands)
    K5_CHECK(t->device() == Device::CUDA && t->dtype() == DType::F32 && t->is_contiguous() && t->dim() == 2,
             "frame_causal_attention: ", t->describe(), " must be a contiguous F32 [D, L] tensor on the GPU");
  const int64_t dim = q.size(0), tokens = q.size(1), frame_tokens = tokens / frames;
  if (tokens == 0 || dim == 0) return;
  const float softmax_scale = scale > 0.0f ? scale : 1.0f / std::sqrt(float(dim));
  const int64_t chunk = std::clamp<int64_t>(score_budget_bytes / (tokens * int64_t(sizeof(float))), 1, frame_tokens);
  const ScratchBuffer scores(size_t(chunk * tokens) * sizeof(float));
  for (int64_t frame = 0; frame < frames; ++frame) {
    const int64_t visible = (frame + 1) * frame_tokens;
    for (int64_t q0 = frame * frame_tokens; q0 < (frame + 1) * frame_tokens; q0 += chunk) {
      const int64_t rows = std::min(chunk, (frame + 1) * frame_tokens - q0);
      // scores (column-major [visible, rows], ld visible) = K^T (K as stored: column-major [visible, D], ld L)
      // x Q_chunk (Q as stored: column-major [rows, D], ld L, read transposed).
      gemm_or_fail({.input_type = CUDA_R_32F,
                    .a = k.data<float>(),
                    .a_transposed = false,
                    .lda = tokens,
                    .b = q.data<float>() + q0,
                    .b_transposed = true,
                    .ldb = tokens,
                    .d = scores.as<float>(),
                    .ldd = visible,
                    .m = visible,
                    .n = rows,
                    .k = dim},
                   "scores");
      query_softmax_kernel<<<unsigned(rows), kFrameSoftmaxThreads>>>(scores.as<float>(), visible, softmax_scale);
      K5_CUDA_CHECK_LAUNCH("query_softmax_kernel");
      // out[:, q0:q0+rows] viewed column-major [rows, D] (ld L) = P (the scores read transposed) x V^T (column-major
      // [visible, D], ld L: V as stored).
      gemm_or_fail({.input_type = CUDA_R_32F,
                    .a = scores.as<float>(),
                    .a_transposed = true,
                    .lda = visible,
                    .b = v.data<float>(),
                    .ldb = tokens,
                    .d = out.data<float>() + q0,
                    .ldd = tokens,
                    .m = rows,
                    .n = dim,
                    .k = visible},
                   "values");
    }
  }
}

}  // namespace k5::cuda
