// Memory-efficient attention: each task owns a few query rows of one head and streams over key tiles with an
// online softmax (running max and sum), so no Lq x Lk score matrix is ever stored. Block-sparse attention is
// the same loop over the kept key blocks only.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/kernels.h"

namespace k5::cpu {

namespace {

constexpr int kQueryRows = 8;  // query rows sharing each loaded key tile
constexpr int kKeyTile = 64;

struct HeadLayout {
  const float* data;
  int64_t tokens, heads, dim, token_stride, head_stride;
  const float* at(int64_t token, int64_t head) const { return data + token * token_stride + head * head_stride; }
};

HeadLayout head_layout(const Tensor& t, const char* what) {
  K5_CHECK(t.dtype() == DType::F32 && t.dim() == 3, "attention: ", what, " must be F32 [L, H, D], got ", t.describe());
  K5_CHECK(t.stride(2) == 1, "attention: ", what, " must have a contiguous last dim, got ", t.describe());
  return {t.data<float>(), t.size(0), t.size(1), t.size(2), t.stride(0), t.stride(1)};
}

inline float dot(const float* a, const float* b, int64_t n) {
  __m256 sum = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) sum = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), sum);
  __m128 half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
  half = _mm_add_ps(half, _mm_movehl_ps(half, half));
  half = _mm_add_ss(half, _mm_movehdup_ps(half));
  float total = _mm_cvtss_f32(half);
  for (; i < n; ++i) total += a[i] * b[i];
  return total;
}

struct KeyRange {
  int64_t begin, end;
};

// Attention of query rows [q0, q0 + rows) of head `head` over the given key ranges; writes normalised rows.
// `visible(query, key)` applies the key mask and causality.
template <typename Visible>
void attend_rows(const HeadLayout& q, const HeadLayout& k, const HeadLayout& v, float* out, int64_t out_token_stride,
                 int64_t head, int64_t kv_head, int64_t q0, int rows, const std::vector<KeyRange>& ranges, float scale,
                 const Visible& visible) {
  const int64_t dim = q.dim;
  float maximum[kQueryRows], sum[kQueryRows], scores[kQueryRows][kKeyTile];
  std::vector<float> accumulator(size_t(kQueryRows * dim), 0.0f);
  for (int r = 0; r < rows; ++r) {
    maximum[r] = -INFINITY;
    sum[r] = 0;
  }
  for (const KeyRange& range : ranges) {
    for (int64_t tile = range.begin; tile < range.end; tile += kKeyTile) {
      const int keys = int(std::min<int64_t>(kKeyTile, range.end - tile));
      for (int r = 0; r < rows; ++r) {
        const float* query = q.at(q0 + r, head);
        float tile_max = -INFINITY;
        for (int j = 0; j < keys; ++j) {
          const float s = visible(q0 + r, tile + j) ? dot(query, k.at(tile + j, kv_head), dim) * scale : -INFINITY;
          scores[r][j] = s;
          tile_max = std::max(tile_max, s);
        }
        if (tile_max == -INFINITY) {
          for (int j = 0; j < keys; ++j) scores[r][j] = 0;
          continue;
        }
        const float new_max = std::max(maximum[r], tile_max);
        const float correction = std::exp(maximum[r] - new_max);
        maximum[r] = new_max;
        float tile_sum = 0;
        for (int j = 0; j < keys; ++j) {
          const float p = std::exp(scores[r][j] - new_max);
          scores[r][j] = p;
          tile_sum += p;
        }
        sum[r] = sum[r] * correction + tile_sum;
        float* acc = accumulator.data() + r * dim;
        if (correction != 1.0f)
          for (int64_t d = 0; d < dim; ++d) acc[d] *= correction;
      }
      for (int j = 0; j < keys; ++j) {
        const float* value = v.at(tile + j, kv_head);
        for (int r = 0; r < rows; ++r) {
          const float p = scores[r][j];
          if (p == 0.0f) continue;
          float* acc = accumulator.data() + r * dim;
          for (int64_t d = 0; d < dim; ++d) acc[d] += p * value[d];
        }
      }
    }
  }
  for (int r = 0; r < rows; ++r) {
    float* target = out + (q0 + r) * out_token_stride + head * dim;
    const float inverse = sum[r] > 0 ? 1.0f / sum[r] : 0.0f;
    for (int64_t d = 0; d < dim; ++d) target[d] = accumulator[size_t(r * dim + d)] * inverse;
  }
}

void check_output(const Tensor& out, const HeadLayout& q) {
  K5_CHECK(out.dtype() == DType::F32 && out.is_contiguous() && out.shape() == Shape({q.tokens, q.heads, q.dim}),
           "attention: output must be contiguous F32 [", q.tokens, ", ", q.heads, ", ", q.dim, "], got ", out.describe());
}

}  // namespace

void attention(Context& ctx, const Tensor& q_tensor, const Tensor& k_tensor, const Tensor& v_tensor, Tensor& out,
               const ops::AttentionOptions& options) {
  const HeadLayout q = head_layout(q_tensor, "q"), k = head_layout(k_tensor, "k"), v = head_layout(v_tensor, "v");
  K5_CHECK(k.dim == q.dim && v.dim == q.dim && k.tokens == v.tokens && k.heads == v.heads && k.heads > 0 &&
               q.heads % k.heads == 0,
           "attention: incompatible q ", q_tensor.describe(), ", k ", k_tensor.describe(), ", v ", v_tensor.describe());
  check_output(out, q);
  const uint8_t* key_mask = nullptr;
  if (options.key_mask) {
    const Tensor& mask = *options.key_mask;
    K5_CHECK((mask.dtype() == DType::U8 || mask.dtype() == DType::BOOL) && mask.numel() == k.tokens &&
                 mask.is_contiguous(),
             "attention: key mask must be U8/BOOL with ", k.tokens, " elements, got ", mask.describe());
    key_mask = mask.data<uint8_t>();
  }
  const float scale = options.scale > 0 ? options.scale : 1.0f / std::sqrt(float(q.dim));
  const int64_t causal_offset = k.tokens - q.tokens;
  const int64_t group = q.heads / k.heads;
  const int64_t query_blocks = (q.tokens + kQueryRows - 1) / kQueryRows;
  float* output = out.data<float>();
  ctx.pool().parallel_for(0, q.heads * query_blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t head = task / query_blocks, q0 = (task % query_blocks) * kQueryRows;
      const int rows = int(std::min<int64_t>(kQueryRows, q.tokens - q0));
      int64_t key_end = k.tokens;
      if (options.causal) key_end = std::clamp<int64_t>(q0 + rows + causal_offset, 0, k.tokens);
      const std::vector<KeyRange> ranges{{0, key_end}};
      auto visible = [&](int64_t query, int64_t key) {
        if (key_mask && !key_mask[key]) return false;
        return !options.causal || key <= query + causal_offset;
      };
      attend_rows(q, k, v, output, q.heads * q.dim, head, head / group, q0, rows, ranges, scale, visible);
    }
  });
}

void block_sparse_attention(Context& ctx, const Tensor& q_tensor, const Tensor& k_tensor, const Tensor& v_tensor,
                            const Tensor& block_mask, int block_size, Tensor& out, float scale) {
  const HeadLayout q = head_layout(q_tensor, "q"), k = head_layout(k_tensor, "k"), v = head_layout(v_tensor, "v");
  K5_CHECK(k.dim == q.dim && v.dim == q.dim && k.tokens == v.tokens && k.heads == q.heads && v.heads == q.heads,
           "block_sparse_attention: incompatible q ", q_tensor.describe(), ", k ", k_tensor.describe(), ", v ",
           v_tensor.describe());
  K5_CHECK(block_size > 0 && block_size % kQueryRows == 0, "block_sparse_attention: block size ", block_size,
           " must be a positive multiple of ", kQueryRows);
  check_output(out, q);
  const int64_t query_blocks = (q.tokens + block_size - 1) / block_size;
  const int64_t key_blocks = (k.tokens + block_size - 1) / block_size;
  K5_CHECK((block_mask.dtype() == DType::U8 || block_mask.dtype() == DType::BOOL) && block_mask.is_contiguous() &&
               block_mask.shape() == Shape({q.heads, query_blocks, key_blocks}),
           "block_sparse_attention: block mask must be U8/BOOL [", q.heads, ", ", query_blocks, ", ", key_blocks,
           "], got ", block_mask.describe());
  const uint8_t* mask = block_mask.data<uint8_t>();
  const float softmax_scale = scale > 0 ? scale : 1.0f / std::sqrt(float(q.dim));
  float* output = out.data<float>();
  ctx.pool().parallel_for(0, q.heads * query_blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<KeyRange> ranges;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t head = task / query_blocks, query_block = task % query_blocks;
      ranges.clear();
      const uint8_t* kept = mask + (head * query_blocks + query_block) * key_blocks;
      for (int64_t key_block = 0; key_block < key_blocks; ++key_block) {
        if (!kept[key_block]) continue;
        const int64_t key_begin = key_block * block_size, key_end = std::min(k.tokens, key_begin + block_size);
        if (!ranges.empty() && ranges.back().end == key_begin)
          ranges.back().end = key_end;  // merge neighbouring blocks into one range
        else
          ranges.push_back({key_begin, key_end});
      }
      const int64_t query_end = std::min(q.tokens, (query_block + 1) * block_size);
      for (int64_t q0 = query_block * block_size; q0 < query_end; q0 += kQueryRows) {
        const int rows = int(std::min<int64_t>(kQueryRows, query_end - q0));
        attend_rows(q, k, v, output, q.heads * q.dim, head, head, q0, rows, ranges, softmax_scale,
                    [](int64_t, int64_t) { return true; });
      }
    }
  });
}

}  // namespace k5::cpu
