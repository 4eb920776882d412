// Single-head attention on channel-major tokens ([D, L]), the layout the VAE activations already have, so no
// transposes are needed: scores = Q^T K and out = V P^T are both plain GEMMs. Queries go in chunks of one
// frame so the score buffer stays small and the frame-causal key range is uniform within a chunk.
#include <dnnl.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/conv.h"

namespace k5::cpu {

void frame_causal_attention(Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, int frames, Tensor& out,
                            float scale) {
  const int64_t dim = q.size(0), tokens = q.size(1), frame_tokens = tokens / frames;
  const float softmax_scale = scale > 0.0f ? scale : 1.0f / std::sqrt(float(dim));
  constexpr int64_t kQueryChunk = 256;
  std::vector<float> scores(size_t(kQueryChunk * tokens));
  const float* queries = q.data<float>();
  const float* keys = k.data<float>();
  const float* values = v.data<float>();
  float* output = out.data<float>();
  for (int64_t frame = 0; frame < frames; ++frame) {
    const int64_t visible = (frame + 1) * frame_tokens;
    for (int64_t q0 = frame * frame_tokens; q0 < (frame + 1) * frame_tokens; q0 += kQueryChunk) {
      const int64_t rows = std::min(kQueryChunk, (frame + 1) * frame_tokens - q0);
      // scores[rows, visible] = scale * Q[:, q0:q0+rows]^T K[:, :visible]
      K5_CHECK(dnnl_sgemm('T', 'N', rows, visible, dim, softmax_scale, queries + q0, tokens, keys, tokens, 0.0f,
                          scores.data(), visible) == dnnl_success,
               "oneDNN sgemm failed in frame_causal_attention");
      ctx.pool().parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          float* row = scores.data() + r * visible;
          const float maximum = *std::max_element(row, row + visible);
          double sum = 0;
          for (int64_t j = 0; j < visible; ++j) {
            row[j] = std::exp(row[j] - maximum);
            sum += row[j];
          }
          const float inverse = float(1.0 / sum);
          for (int64_t j = 0; j < visible; ++j) row[j] *= inverse;
        }
      });
      // out[:, q0:q0+rows] = V[:, :visible] P^T
      K5_CHECK(dnnl_sgemm('N', 'T', dim, rows, visible, 1.0f, values, tokens, scores.data(), visible, 0.0f,
                          output + q0, tokens) == dnnl_success,
               "oneDNN sgemm failed in frame_causal_attention");
    }
  }
}

}  // namespace k5::cpu
