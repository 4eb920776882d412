// Memory-efficient attention: each task owns a few query rows of one head and streams over key tiles with an
// online softmax (running max and sum), so no Lq x Lk score matrix is ever stored. Block-sparse attention is
// the same loop over the kept key blocks only.
#include <dnnl.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "backends/cpu/kernels.h"
#include "backends/cpu/onednn_matmul.h"
#include "backends/cpu/vector_math.h"

namespace k5::cpu {

namespace {

constexpr int64_t kQueryBlock = 128;  // query rows per dense-attention task
constexpr int64_t kKeyTile = 512;    // keys per score tile

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

inline float row_max(const float* row, int64_t n) {
  __m256 best = _mm256_set1_ps(-INFINITY);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) best = _mm256_max_ps(best, _mm256_loadu_ps(row + i));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, best);
  float maximum = *std::max_element(lanes, lanes + 8);
  for (; i < n; ++i) maximum = std::max(maximum, row[i]);
  return maximum;
}

// row[i] = exp(row[i] - maximum) for i < n; returns the sum.
inline float exp_and_sum(float* row, int64_t n, float maximum) {
  const __m256 shift = _mm256_set1_ps(maximum);
  __m256 total = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + i), shift));
    _mm256_storeu_ps(row + i, e);
    total = _mm256_add_ps(total, e);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, total);
  float sum = lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
  for (; i < n; ++i) sum += (row[i] = std::exp(row[i] - maximum));
  return sum;
}

struct KeyRange {
  int64_t begin, end;
};

// The GEMMs inside a pool task run on the calling thread only (oneDNN would otherwise start an OpenMP team
// per call on top of our pool).
class SingleThreadedGemm {
 public:
  SingleThreadedGemm() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~SingleThreadedGemm() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

void sgemm(char transb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc) {
  K5_CHECK(dnnl_sgemm('N', transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == dnnl_success,
           "attention: oneDNN sgemm failed");
}

// Flash-attention style: for query rows [q0, q0 + rows) of `head`, scores of one key tile at a time
// (S = scale * Q K^T, a GEMM), online softmax (running max and sum per row, earlier output rescaled), then
// O += P V (a GEMM). `mask_tile(rows, key_begin, keys, scores)` sets invisible scores to -inf.
// The two products of a tile, in float32 (sgemm) or BF16 (oneDNN matmul on BF16 copies of q, k, v).
class TileProducts {
 public:
  virtual ~TileProducts() = default;
  // scores[rows, keys] = scale * q[q0 : q0 + rows] k[key0 : key0 + keys]^T
  virtual void scores(int64_t head, int64_t kv_head, int64_t q0, int64_t rows, int64_t key0, int64_t keys,
                      float* scores) = 0;
  // accumulator[rows, dim] += probabilities[rows, keys] v[key0 : key0 + keys]
  virtual void accumulate(int64_t kv_head, int64_t rows, int64_t key0, int64_t keys, const float* probabilities,
                          float* accumulator) = 0;
};

class Fp32Products final : public TileProducts {
 public:
  Fp32Products(const HeadLayout& q, const HeadLayout& k, const HeadLayout& v, float scale)
      : q_(q), k_(k), v_(v), scale_(scale) {}
  void scores(int64_t head, int64_t kv_head, int64_t q0, int64_t rows, int64_t key0, int64_t keys,
              float* scores) override {
    sgemm('T', rows, keys, q_.dim, scale_, q_.at(q0, head), q_.token_stride, k_.at(key0, kv_head), k_.token_stride,
          0.0f, scores, keys);
  }
  void accumulate(int64_t kv_head, int64_t rows, int64_t key0, int64_t keys, const float* probabilities,
                  float* accumulator) override {
    sgemm('N', rows, q_.dim, keys, 1.0f, probabilities, keys, v_.at(key0, kv_head), v_.token_stride, 1.0f, accumulator,
          q_.dim);
  }

 private:
  const HeadLayout &q_, &k_, &v_;
  float scale_;
};

// q, k, v copied once to BF16 as [heads, tokens, dim]; the probabilities are rounded to BF16 per tile, as
// flash attention does in BF16.
class Bf16Products final : public TileProducts {
 public:
  Bf16Products(const uint16_t* q, const uint16_t* k, const uint16_t* v, int64_t q_tokens, int64_t kv_tokens,
               int64_t dim, float scale)
      : q_(q), k_(k), v_(v), q_tokens_(q_tokens), kv_tokens_(kv_tokens), dim_(dim), scale_(scale) {}
  void scores(int64_t head, int64_t kv_head, int64_t q0, int64_t rows, int64_t key0, int64_t keys,
              float* scores) override {
    matmul_bf16({.m = rows, .n = keys, .k = dim_, .a = q_ + (head * q_tokens_ + q0) * dim_, .lda = dim_,
                 .b = k_ + (kv_head * kv_tokens_ + key0) * dim_, .ldb = dim_, .b_transposed = true, .c = scores,
                 .ldc = keys});
    for (int64_t i = 0; i < rows * keys; ++i) scores[i] *= scale_;
  }
  void accumulate(int64_t kv_head, int64_t rows, int64_t key0, int64_t keys, const float* probabilities,
                  float* accumulator) override {
    probabilities_.resize(size_t(rows * keys));
    convert_from_f32(probabilities, probabilities_.data(), DType::BF16, size_t(rows * keys));
    matmul_bf16({.m = rows, .n = dim_, .k = keys, .a = probabilities_.data(), .lda = keys,
                 .b = v_ + (kv_head * kv_tokens_ + key0) * dim_, .ldb = dim_, .b_transposed = false,
                 .c = accumulator, .ldc = dim_, .accumulate = true});
  }

 private:
  const uint16_t *q_, *k_, *v_;
  int64_t q_tokens_, kv_tokens_, dim_;
  float scale_;
  std::vector<uint16_t> probabilities_;
};

template <typename MaskTile>
void attend_block(TileProducts& products, int64_t dim, float* out, int64_t out_token_stride, int64_t head,
                  int64_t kv_head, int64_t q0, int64_t rows, const std::vector<KeyRange>& ranges,
                  std::vector<float>& scratch, const MaskTile& mask_tile) {
  scratch.resize(size_t(rows * kKeyTile + rows * dim + 2 * rows));
  float* scores = scratch.data();
  float* accumulator = scores + rows * kKeyTile;
  float* maximum = accumulator + rows * dim;
  float* sum = maximum + rows;
  std::fill(accumulator, accumulator + rows * dim, 0.0f);
  std::fill(maximum, maximum + rows, -INFINITY);
  std::fill(sum, sum + rows, 0.0f);
  for (const KeyRange& range : ranges) {
    for (int64_t tile = range.begin; tile < range.end; tile += kKeyTile) {
      const int64_t keys = std::min(kKeyTile, range.end - tile);
      products.scores(head, kv_head, q0, rows, tile, keys, scores);
      mask_tile(rows, tile, keys, scores);
      for (int64_t r = 0; r < rows; ++r) {
        float* row = scores + r * keys;
        const float tile_max = row_max(row, keys);
        if (tile_max == -INFINITY) {
          std::fill(row, row + keys, 0.0f);
          continue;
        }
        const float new_max = std::max(maximum[r], tile_max);
        const float correction = std::exp(maximum[r] - new_max);
        maximum[r] = new_max;
        sum[r] = sum[r] * correction + exp_and_sum(row, keys, new_max);
        if (correction != 1.0f)
          for (int64_t d = 0; d < dim; ++d) accumulator[r * dim + d] *= correction;
      }
      products.accumulate(kv_head, rows, tile, keys, scores, accumulator);
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* target = out + (q0 + r) * out_token_stride + head * dim;
    const float inverse = sum[r] > 0 ? 1.0f / sum[r] : 0.0f;
    for (int64_t d = 0; d < dim; ++d) target[d] = accumulator[r * dim + d] * inverse;
  }
}

// A BF16 copy of q, k or v as [heads, tokens, dim] in the workspace.
const uint16_t* heads_as_bf16(Context& ctx, const HeadLayout& x) {
  auto* copy = static_cast<uint16_t*>(ctx.workspace().allocate(size_t(x.heads * x.tokens * x.dim) * 2));
  ctx.pool().parallel_for(0, x.heads * x.tokens, 256, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t head = row / x.tokens, token = row % x.tokens;
      convert_from_f32(x.at(token, head), copy + row * x.dim, DType::BF16, size_t(x.dim));
    }
  });
  return copy;
}

// Per-thread tile products for the context's precision.
struct ProductsFactory {
  const HeadLayout &q, &k, &v;
  float scale;
  const uint16_t *q16 = nullptr, *k16 = nullptr, *v16 = nullptr;

  ProductsFactory(Context& ctx, const HeadLayout& q_, const HeadLayout& k_, const HeadLayout& v_, float scale_)
      : q(q_), k(k_), v(v_), scale(scale_) {
    if (ctx.precision() == Precision::bf16) {
      q16 = heads_as_bf16(ctx, q);
      k16 = heads_as_bf16(ctx, k);
      v16 = heads_as_bf16(ctx, v);
    }
  }
  std::unique_ptr<TileProducts> make() const {
    if (q16) return std::make_unique<Bf16Products>(q16, k16, v16, q.tokens, k.tokens, q.dim, scale);
    return std::make_unique<Fp32Products>(q, k, v, scale);
  }
};

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
  const int64_t query_blocks = (q.tokens + kQueryBlock - 1) / kQueryBlock;
  float* output = out.data<float>();
  auto scope = ctx.workspace().scope();
  const ProductsFactory factory(ctx, q, k, v, scale);
  ctx.pool().parallel_for(0, q.heads * query_blocks, 1, [&](int64_t begin, int64_t end) {
    SingleThreadedGemm single_threaded;
    std::vector<float> scratch;
    auto products = factory.make();
    for (int64_t task = begin; task < end; ++task) {
      const int64_t head = task / query_blocks, q0 = (task % query_blocks) * kQueryBlock;
      const int64_t rows = std::min(kQueryBlock, q.tokens - q0);
      int64_t key_end = k.tokens;
      if (options.causal) key_end = std::clamp<int64_t>(q0 + rows + causal_offset, 0, k.tokens);
      const std::vector<KeyRange> ranges{{0, key_end}};
      auto mask_tile = [&](int64_t tile_rows, int64_t key_begin, int64_t keys, float* scores) {
        if (key_mask)
          for (int64_t j = 0; j < keys; ++j)
            if (!key_mask[key_begin + j])
              for (int64_t r = 0; r < tile_rows; ++r) scores[r * keys + j] = -INFINITY;
        if (options.causal)
          for (int64_t r = 0; r < tile_rows; ++r)
            for (int64_t j = std::max<int64_t>(0, q0 + r + causal_offset + 1 - key_begin); j < keys; ++j)
              scores[r * keys + j] = -INFINITY;
      };
      attend_block(*products, q.dim, output, q.heads * q.dim, head, head / group, q0, rows, ranges, scratch, mask_tile);
    }
  });
}

void block_sparse_attention(Context& ctx, const Tensor& q_tensor, const Tensor& k_tensor, const Tensor& v_tensor,
                            const Tensor& block_mask, int block_size, Tensor& out, float scale) {
  const HeadLayout q = head_layout(q_tensor, "q"), k = head_layout(k_tensor, "k"), v = head_layout(v_tensor, "v");
  K5_CHECK(k.dim == q.dim && v.dim == q.dim && k.tokens == v.tokens && k.heads == q.heads && v.heads == q.heads,
           "block_sparse_attention: incompatible q ", q_tensor.describe(), ", k ", k_tensor.describe(), ", v ",
           v_tensor.describe());
  K5_CHECK(block_size > 0, "block_sparse_attention: block size ", block_size, " must be positive");
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
  auto scope = ctx.workspace().scope();
  const ProductsFactory factory(ctx, q, k, v, softmax_scale);
  ctx.pool().parallel_for(0, q.heads * query_blocks, 1, [&](int64_t begin, int64_t end) {
    SingleThreadedGemm single_threaded;
    std::vector<float> scratch;
    std::vector<KeyRange> ranges;
    auto products = factory.make();
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
      const int64_t q0 = query_block * block_size, rows = std::min<int64_t>(block_size, q.tokens - q0);
      attend_block(*products, q.dim, output, q.heads * q.dim, head, head, q0, rows, ranges, scratch,
                   [](int64_t, int64_t, int64_t, float*) {});
    }
  });
}

}  // namespace k5::cpu
