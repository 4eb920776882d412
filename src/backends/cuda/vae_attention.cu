// The VAE mid-block attention on the GPU (the CUDA side of ops::frame_causal_attention, src/ops/conv.h): the
// CPU kernel's computation (src/backends/cpu/conv_attention.cpp) with cuBLASLt GEMMs. The VAE's 512 channels
// are beyond the dense attention kernel's head-dim limit, and the tokens are columns of [D, L], so
// per chunk of `rows` queries of one frame (keys: the `visible` tokens of frames 0..f):
//
//   scores[rows, visible] (column-major, ld rows) = Q[:, q0:q0+rows]^T K[:, :visible]   (K re-laid as [L, D])
//   column-wise softmax of scale * scores                                           (float32, sum in double)
//   out[:, q0:q0+rows] = V[:, :visible] P^T                                       (written in place, ld L)
//
// Queries are chunked so the score buffer stays within score_budget_bytes.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>

#include "backends/cuda/check.h"
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/gemm.h"
#include "backends/cuda/kernels.h"

namespace k5::cuda {

namespace {

constexpr int kQueriesPerBlock = 32;  // threadIdx.x: one query (a column of the scores) each
constexpr int kKeySplits = 8;         // threadIdx.y: the keys of a query are shared out over this many threads

// scores: [visible, rows] as stored (query r's scores at r, r + rows, ...). Softmax of scale * scores over
// each query's keys, as the CPU: float max, float exp, double sum, multiplied by the float inverse.
__global__ void column_softmax_kernel(float* scores, int64_t rows, int64_t visible, float scale) {
  __shared__ float maxima[kKeySplits][kQueriesPerBlock];
  __shared__ double sums[kKeySplits][kQueriesPerBlock];
  const int64_t r = int64_t(blockIdx.x) * kQueriesPerBlock + threadIdx.x;
  const bool active = r < rows;
  float maximum = -INFINITY;
  if (active)
    for (int64_t j = threadIdx.y; j < visible; j += kKeySplits) maximum = fmaxf(maximum, scale * scores[j * rows + r]);
  maxima[threadIdx.y][threadIdx.x] = maximum;
  __syncthreads();
  maximum = -INFINITY;
  for (int s = 0; s < kKeySplits; ++s) maximum = fmaxf(maximum, maxima[s][threadIdx.x]);
  double sum = 0;
  if (active)
    for (int64_t j = threadIdx.y; j < visible; j += kKeySplits) {
      const float e = expf(scale * scores[j * rows + r] - maximum);
      scores[j * rows + r] = e;
      sum += e;
    }
  sums[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  sum = 0;
  for (int s = 0; s < kKeySplits; ++s) sum += sums[s][threadIdx.x];
  const float inverse = float(1.0 / sum);
  if (active)
    for (int64_t j = threadIdx.y; j < visible; j += kKeySplits) scores[j * rows + r] *= inverse;
}

void gemm_or_fail(const Gemm& g, const char* what) {
  K5_CHECK(try_gemm(g), "frame_causal_attention: cuBLASLt has no algorithm for the ", what, " GEMM (", g.m, "x", g.n,
           "x", g.k, ")");
}

}  // namespace

void frame_causal_attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, int frames, Tensor& out,
                            float scale, int64_t score_budget_bytes) {
  const Tensor* const operands[] = {&q, &k, &v, &out};
  for (const Tensor* t : operands)
    K5_CHECK(t->device() == Device::CUDA && t->dtype() == DType::F32 && t->is_contiguous() && t->dim() == 2,
             "frame_causal_attention: ", t->describe(), " must be a contiguous F32 [D, L] tensor on the GPU");
  const int64_t dim = q.size(0), tokens = q.size(1), frame_tokens = tokens / frames;
  if (tokens == 0 || dim == 0) return;
  const float softmax_scale = scale > 0.0f ? scale : 1.0f / std::sqrt(float(dim));
  // K as [L, D]: the scores GEMM needs the channels of a key contiguous.
  Tensor keys = Tensor::empty(DType::F32, {tokens, dim}, Device::CUDA);
  copy(ctx, k.transpose(0, 1), keys);
  const int64_t chunk = std::clamp<int64_t>(score_budget_bytes / (tokens * int64_t(sizeof(float))), 1, frame_tokens);
  const ScratchBuffer scores(size_t(chunk * tokens) * sizeof(float));
  for (int64_t frame = 0; frame < frames; ++frame) {
    const int64_t visible = (frame + 1) * frame_tokens;
    for (int64_t q0 = frame * frame_tokens; q0 < (frame + 1) * frame_tokens; q0 += chunk) {
      const int64_t rows = std::min(chunk, (frame + 1) * frame_tokens - q0);
      // Column-major scores[rows, visible] = Q_chunk^T (column-major [rows, D], ld L) x K^T (column-major [D, visible]).
      gemm_or_fail({.input_type = CUDA_R_32F,
                    .a = q.data<float>() + q0,
                    .a_transposed = false,
                    .lda = tokens,
                    .b = keys.data<float>(),
                    .ldb = dim,
                    .d = scores.as<float>(),
                    .ldd = rows,
                    .m = rows,
                    .n = visible,
                    .k = dim},
                   "scores");
      const dim3 block(kQueriesPerBlock, kKeySplits);
      column_softmax_kernel<<<unsigned((rows + kQueriesPerBlock - 1) / kQueriesPerBlock), block>>>(
          scores.as<float>(), rows, visible, softmax_scale);
      K5_CUDA_CHECK_LAUNCH("column_softmax_kernel");
      // out[:, q0:q0+rows] viewed column-major [rows, D] (ld L) = P (column-major [rows, visible]) x V^T (column-major
      // [visible, D], ld L: V as stored).
      gemm_or_fail({.input_type = CUDA_R_32F,
                    .a = scores.as<float>(),
                    .a_transposed = false,
                    .lda = rows,
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
