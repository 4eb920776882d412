#include "models/crossdit/crossdit.h"

#include <cfloat>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "models/crossdit/nabla.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/linear_layer.h"
#include "ops/norm.h"
#include "ops/rope.h"

namespace k5 {
namespace {

constexpr float kLayerNormEps = 1e-5f;
constexpr float kQkNormEps = FLT_EPSILON;  // nn.RMSNorm(eps=None) on float32 input

// out[N] = W[N, K] x[K] + b, in float32 whatever the stored weight dtype (F32/BF16): the official
// modulation and time embedding run under a float32 autocast.
std::vector<float> matvec(Context& ctx, const std::vector<float>& x, const ops::LinearLayer& linear) {
  const Tensor& w = linear.weight;
  const int64_t N = w.size(0), K = w.size(1);
  K5_CHECK(int64_t(x.size()) == K, "matvec: input has ", x.size(), " values, weight ", w.describe());
  std::vector<float> out(static_cast<size_t>(N));
  const float* bias = linear.bias.defined() ? linear.bias.data<float>() : nullptr;
  ctx.pool().parallel_for(0, N, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(K));
    for (int64_t n = begin; n < end; ++n) {
      const float* wr;
      if (w.dtype() == DType::BF16) {
        const uint16_t* src = w.data<uint16_t>() + n * K;
        for (int64_t k = 0; k < K; ++k) row[size_t(k)] = bf16_to_f32(src[k]);
        wr = row.data();
      } else {
        wr = w.data<float>() + n * K;
      }
      float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t k = 0;
      for (; k + 8 <= K; k += 8)
        for (int j = 0; j < 8; ++j) partial[j] += wr[k + j] * x[size_t(k + j)];
      float sum = 0;
      for (; k < K; ++k) sum += wr[k] * x[size_t(k)];
      for (float p : partial) sum += p;
      out[size_t(n)] = sum + (bias ? bias[n] : 0.0f);
    }
  });
  return out;
}

// x [1, K] -> [1, N] in float32 on x's device: matvec on the CPU (F32 or BF16 weights), a float32 GEMM on the
// GPU (where these weights are F32).
Tensor project(Context& ctx, const Tensor& x, const ops::LinearLayer& linear) {
  if (x.device() != Device::CPU) return ops::linear(ctx, x, linear);
  const std::vector<float> out = matvec(ctx, x.to_f32_vector(), linear);
  return Tensor::from_f32(out, {1, int64_t(out.size())});
}

// exp(-ln(10000) * i / dim) for i in [0, dim), in float32 as the official get_freqs.
std::vector<float> rope_frequencies(int64_t dim) {
  std::vector<float> freqs(static_cast<size_t>(dim));
  const float log_period = float(-std::log(10000.0));
  for (int64_t i = 0; i < dim; ++i) freqs[size_t(i)] = std::exp(log_period * float(i) / float(dim));
  return freqs;
}

struct RopeTables {
  Tensor cos, sin;  // [L, head_dim / 2]

  RopeTables to_device(Device device) const { return {cos.to_device(device), sin.to_device(device)}; }
};

RopeTables text_rope(int64_t L, int64_t head_dim) {
  const std::vector<float> freqs = rope_frequencies(head_dim / 2);
  RopeTables rope{Tensor::empty(DType::F32, {L, head_dim / 2}), Tensor::empty(DType::F32, {L, head_dim / 2})};
  for (int64_t pos = 0; pos < L; ++pos)
    for (int64_t i = 0; i < head_dim / 2; ++i) {
      const float angle = float(pos) * freqs[size_t(i)];
      rope.cos.data<float>()[pos * head_dim / 2 + i] = std::cos(angle);
      rope.sin.data<float>()[pos * head_dim / 2 + i] = std::sin(angle);
    }
  return rope;
}

// 3D RoPE for the tokens in sequence order: token i sits at grid position order[i] of [T, H, W].
RopeTables visual_rope(const std::vector<int64_t>& order, int64_t H, int64_t W, const std::array<int64_t, 3>& axes,
                       const std::array<double, 3>& scale_factor) {
  const int64_t half = (axes[0] + axes[1] + axes[2]) / 2, N = int64_t(order.size());
  std::array<std::vector<float>, 3> freqs;
  for (int a = 0; a < 3; ++a) freqs[size_t(a)] = rope_frequencies(axes[size_t(a)] / 2);
  RopeTables rope{Tensor::empty(DType::F32, {N, half}), Tensor::empty(DType::F32, {N, half})};
  for (int64_t i = 0; i < N; ++i) {
    const int64_t position[3] = {order[size_t(i)] / (H * W), order[size_t(i)] / W % H, order[size_t(i)] % W};
    float* c = rope.cos.data<float>() + i * half;
    float* s = rope.sin.data<float>() + i * half;
    for (int a = 0; a < 3; ++a)
      for (float f : freqs[size_t(a)]) {
        const float angle = float(position[a]) * f / float(scale_factor[size_t(a)]);
        *c++ = std::cos(angle);
        *s++ = std::sin(angle);
      }
  }
  return rope;
}

struct SparsePlan {
  Tensor sta;  // [n, n] U8 over 64-token blocks
  double P = 0.9;
};

// One (self- or cross-) attention sublayer on normalised tokens: projections, q/k RMSNorm, RoPE (self only),
// attention, output projection. x_q [Lq, d], x_kv [Lk, d] -> [Lq, d] (workspace).
Tensor attention_sublayer(Context& ctx, const AttentionWeights& w, int64_t heads, const Tensor& x_q, const Tensor& x_kv,
                          const RopeTables* rope, const Tensor* key_mask, const SparsePlan* sparse, int layer) {
  const int64_t Lq = x_q.size(0), Lk = x_kv.size(0), d = x_q.size(1), hd = d / heads;
  Tensor q = ops::linear(ctx, x_q, w.to_query).reshape({Lq, heads, hd});
  Tensor k = ops::linear(ctx, x_kv, w.to_key).reshape({Lk, heads, hd});
  Tensor v = ops::linear(ctx, x_kv, w.to_value).reshape({Lk, heads, hd});
  if (rope) {
    ops::rms_norm_rope_interleaved(ctx, q, {&w.query_norm, kQkNormEps}, rope->cos, rope->sin);
    ops::rms_norm_rope_interleaved(ctx, k, {&w.key_norm, kQkNormEps}, rope->cos, rope->sin);
  } else {
    ops::rms_norm(ctx, q, &w.query_norm, kQkNormEps, q);
    ops::rms_norm(ctx, k, &w.key_norm, kQkNormEps, k);
  }
  Tensor out = ctx.workspace(x_q.device()).tensor(DType::F32, {Lq, heads, hd});
  if (sparse) {
    Tensor block_mask;
    const double kept = nabla_block_mask(ctx, q, k, sparse->sta, sparse->P, block_mask);
    ctx.log().debug("NABLA layer ", layer, ": kept ", kept * 100.0, "% of blocks");
    ops::block_sparse_attention(ctx, q, k, v, block_mask, int(kNablaBlock), out);
  } else {
    ops::AttentionOptions options;
    options.key_mask = key_mask;
    ops::attention(ctx, q, k, v, out, options);
  }
  return ops::linear(ctx, out.reshape({Lq, d}), w.out_layer);
}

// The dtype of a normalised input that only feeds these linears: when each rounds an F32 input to BF16 anyway,
// the norm writes it rounded, once, at half the size.
template <typename... Layers>
DType linear_input_dtype(Precision precision, const Layers&... layers) {
  return ((layers.input_dtype(precision) == DType::BF16) && ...) ? DType::BF16 : DType::F32;
}

Tensor feed_forward(Context& ctx, const FeedForwardWeights& w, const Tensor& x) {
  Tensor hidden = ops::linear(ctx, x, w.in_layer);
  // GELU in float32, its results rounded once to what the out layer reads (F32 weights: in place).
  const DType dtype = linear_input_dtype(ctx.precision(), w.out_layer);
  Tensor activated = dtype == DType::F32 ? hidden : ctx.workspace(x.device()).tensor(dtype, hidden.shape());
  ops::gelu(ctx, hidden, activated);
  return ops::linear(ctx, activated, w.out_layer);
}

// Modulation parameters: chunk j of a [k * d] vector.
struct Modulation {
  Tensor values;  // [k * d] F32
  int64_t d;
  Tensor operator[](int64_t j) const { return values.slice(0, j * d, (j + 1) * d); }
};

Modulation modulation(Context& ctx, const Tensor& silu_time, const ops::LinearLayer& w, int64_t d) {
  const Tensor values = project(ctx, silu_time, w);
  return {values.reshape({values.numel()}), d};
}

// Text encoder block: x [L, d] updated in place.
void encoder_block(Context& ctx, const EncoderBlockWeights& w, const Tensor& silu_time, int64_t heads, Tensor& x,
                   const RopeTables& rope, const Tensor* key_mask) {
  auto scope = ctx.workspace(x.device()).scope();
  const int64_t d = x.size(1);
  const Modulation mod = modulation(ctx, silu_time, w.modulation, d);  // (shift, scale, gate) x (attn, ff)
  const AttentionWeights& self = w.self_attention;
  const DType h_dtype =
      linear_input_dtype(ctx.precision(), self.to_query, self.to_key, self.to_value, w.feed_forward.in_layer);
  Tensor h = ctx.workspace(x.device()).tensor(h_dtype, x.shape());

  ops::scale_shift_norm(ctx, x, mod[1], mod[0], kLayerNormEps, h);
  ops::gated_residual(ctx, x, attention_sublayer(ctx, w.self_attention, heads, h, h, &rope, key_mask, nullptr, -1),
                      mod[2]);

  ops::scale_shift_norm(ctx, x, mod[4], mod[3], kLayerNormEps, h);
  ops::gated_residual(ctx, x, feed_forward(ctx, w.feed_forward, h), mod[5]);
}

// Visual decoder block: x [N, d] updated in place; text [L, d] from the encoder.
void decoder_block(Context& ctx, const DecoderBlockWeights& w, const Tensor& silu_time, int64_t heads, Tensor& x,
                   const Tensor& text, const RopeTables& rope, const Tensor* key_mask, const SparsePlan* sparse,
                   int layer) {
  auto scope = ctx.workspace(x.device()).scope();
  const int64_t d = x.size(1);
  const Modulation mod = modulation(ctx, silu_time, w.modulation, d);  // (shift, scale, gate) x (self, cross, ff)
  const AttentionWeights& self = w.self_attention;
  const DType h_dtype = linear_input_dtype(ctx.precision(), self.to_query, self.to_key, self.to_value,
                                           w.cross_attention.to_query, w.feed_forward.in_layer);
  Tensor h = ctx.workspace(x.device()).tensor(h_dtype, x.shape());

  ops::scale_shift_norm(ctx, x, mod[1], mod[0], kLayerNormEps, h);
  ops::gated_residual(ctx, x, attention_sublayer(ctx, w.self_attention, heads, h, h, &rope, nullptr, sparse, layer),
                      mod[2]);

  ops::scale_shift_norm(ctx, x, mod[4], mod[3], kLayerNormEps, h);
  ops::gated_residual(
      ctx, x, attention_sublayer(ctx, w.cross_attention, heads, h, text, nullptr, key_mask, nullptr, layer), mod[5]);

  ops::scale_shift_norm(ctx, x, mod[7], mod[6], kLayerNormEps, h);
  ops::gated_residual(ctx, x, feed_forward(ctx, w.feed_forward, h), mod[8]);
}

}  // namespace

DitAttention parse_dit_attention(const std::string& name) {
  if (name == "auto") return DitAttention::automatic;
  if (name == "dense") return DitAttention::dense;
  if (name == "nabla") return DitAttention::nabla;
  fail("--attention must be auto, dense or nabla, found '", name, "'");
}

CrossDit CrossDit::load(const KandinskyConfig& config, const std::string& weights_path, Precision precision,
                        DitAttention attention, Device device, const std::vector<LoraAdapter>& loras,
                        bool int8_weights) {
  CrossDit model;
  model.config_ = config;
  model.device_ = device;
  const DitParams& p = config.dit;
  K5_CHECK(p.patch_size[0] >= 1 && p.patch_size[1] >= 1 && p.patch_size[2] >= 1, config.source,
           ": patch_size must be positive");
  model.checkpoint_ = Checkpoint::open(weights_path);
  model.weights_ = load_crossdit_weights(model.checkpoint_, p, precision, device, loras, int8_weights);
  if (device != Device::CPU) model.checkpoint_ = {};  // everything was copied to the device
  model.nabla_ =
      attention == DitAttention::nabla || (attention == DitAttention::automatic && config.attention.type == "nabla");
  if (model.nabla_)
    K5_CHECK(p.patch_size[0] == 1, config.source, ": NABLA needs patch_size[0] == 1 (as the official code)");
  return model;
}

void CrossDit::check_inputs(const DitInputs& in) const {
  const DitParams& p = params();
  auto shape = [](const Tensor& t) { return shape_string(t.shape()); };
  K5_CHECK(in.x.defined() && in.x.dim() == 4 && in.x.size(3) == p.input_channels(), "input 'x' has shape ",
           in.x.defined() ? shape(in.x) : "none", ", expected [T, H, W, ", p.input_channels(), "]");
  K5_CHECK(in.x.size(0) % p.patch_size[0] == 0 && in.x.size(1) % p.patch_size[1] == 0 &&
               in.x.size(2) % p.patch_size[2] == 0 && in.x.size(1) > 0 && in.x.size(2) > 0 && in.x.size(0) > 0,
           "input 'x' shape ", shape(in.x), " is not divisible by the patch size");
  K5_CHECK(in.text_embed.defined() && in.text_embed.dim() == 2 && in.text_embed.size(1) == p.in_text_dim &&
               in.text_embed.size(0) > 0,
           "input 'text_embed' has shape ", in.text_embed.defined() ? shape(in.text_embed) : "none", ", expected [L, ",
           p.in_text_dim, "]");
  K5_CHECK(in.pooled_text_embed.defined() && (in.pooled_text_embed.shape() == Shape{1, p.in_text_dim2}),
           "input 'pooled_text_embed' has shape ",
           in.pooled_text_embed.defined() ? shape(in.pooled_text_embed) : "none", ", expected [1, ", p.in_text_dim2,
           "]");
  if (in.attention_mask.defined())
    K5_CHECK((in.attention_mask.shape() == Shape{in.text_embed.size(0)}), "input 'attention_mask' has ",
             in.attention_mask.numel(), " entries, expected [1, ", in.text_embed.size(0), "]");
}

Tensor CrossDit::forward(Context& ctx, const DitInputs& in) const {
  check_inputs(in);
  const DitParams& p = params();
  const CrossDitWeights& w = weights_;
  const Device device = device_;
  auto host_scope = ctx.workspace().scope();
  auto scope = ctx.workspace(device).scope();
  const int64_t d = p.model_dim, heads = p.num_heads(), hd = p.head_dim();
  const int64_t p0 = p.patch_size[0], p1 = p.patch_size[1], p2 = p.patch_size[2], patch = p0 * p1 * p2;
  const int64_t T = in.x.size(0) / p0, H = in.x.size(1) / p1, W = in.x.size(2) / p2, N = T * H * W;
  const int64_t L = in.text_embed.size(0), Cin = in.x.size(3), Cout = p.out_visual_dim;
  const Tensor x_in = in.x.contiguous();
  const Tensor mask = in.attention_mask.defined() ? in.attention_mask.to_device(device) : Tensor();
  const Tensor* key_mask = mask.defined() ? &mask : nullptr;

  // Time embedding [1, td]: sinusoid (cos half first) -> Linear -> SiLU -> Linear, plus the pooled CLIP
  // embedding; SiLU of it modulates every block.
  Tensor silu_time;
  {
    const std::vector<float> freqs = rope_frequencies(d / 2);
    std::vector<float> sinusoid(static_cast<size_t>(d));
    for (int64_t i = 0; i < d / 2; ++i) {
      const float angle = in.time * freqs[size_t(i)];
      sinusoid[size_t(i)] = std::cos(angle);
      sinusoid[size_t(i + d / 2)] = std::sin(angle);
    }
    Tensor hidden = project(ctx, Tensor::from_f32(sinusoid, {1, d}).to_device(device), w.time_in);
    ops::silu(ctx, hidden, hidden);
    silu_time = project(ctx, hidden, w.time_out);
    Tensor pooled = project(ctx, in.pooled_text_embed.contiguous().to_device(device), w.pooled_in);
    ops::layer_norm(ctx, pooled, &w.pooled_norm_weight, &w.pooled_norm_bias, kLayerNormEps, pooled);
    ops::add(ctx, silu_time, pooled, silu_time);
    ops::silu(ctx, silu_time, silu_time);
  }

  // Text tokens [L, d]: Linear + LayerNorm, then the encoder blocks with 1D RoPE.
  Tensor text = ops::linear(ctx, in.text_embed.contiguous().to_device(device), w.text_in);
  ops::layer_norm(ctx, text, &w.text_norm_weight, &w.text_norm_bias, kLayerNormEps, text);
  const RopeTables text_rope_tables = text_rope(L, hd).to_device(device);
  for (const EncoderBlockWeights& block : w.text_blocks)
    encoder_block(ctx, block, silu_time, heads, text, text_rope_tables, key_mask);

  // Visual tokens [N, d] in sequence order (fractal order under NABLA, else row-major over [T, H, W]).
  std::vector<int64_t> order;
  SparsePlan sparse;
  if (nabla_) {
    order = fractal_order(T, H, W);
    const AttentionConfig& a = config_.attention;
    sparse.sta = sta_block_mask(T, H / 8, W / 8, a.wT, a.wH, a.wW).to_device(device);
    sparse.P = a.P;
  } else {
    order.resize(size_t(N));
    std::iota(order.begin(), order.end(), 0);
  }
  Tensor host_patches = ctx.workspace().tensor(DType::F32, {N, patch * Cin});  // features (p0, p1, p2, C)
  {
    const float* src = x_in.data<float>();
    float* dst = host_patches.data<float>();
    const int64_t Hx = in.x.size(1), Wx = in.x.size(2);
    ctx.pool().parallel_for(0, N, 64, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t pos = order[size_t(i)], t = pos / (H * W), h = pos / W % H, wq = pos % W;
        float* row = dst + i * patch * Cin;
        for (int64_t a = 0; a < p0; ++a)
          for (int64_t b = 0; b < p1; ++b)
            for (int64_t c = 0; c < p2; ++c) {
              const float* pixel = src + (((t * p0 + a) * Hx + h * p1 + b) * Wx + wq * p2 + c) * Cin;
              std::copy(pixel, pixel + Cin, row + ((a * p1 + b) * p2 + c) * Cin);
            }
      }
    });
  }
  Tensor visual = ops::linear(ctx, host_patches.to_device(device), w.visual_in);
  const RopeTables visual_rope_tables = visual_rope(order, H, W, p.axes_dims, config_.scale_factor).to_device(device);
  if (in.visual_residual && in.reuse_visual_residual) {
    K5_CHECK(in.visual_residual->defined() && in.visual_residual->shape() == visual.shape(),
             "MagCache: no cached residual of shape ", shape_string(visual.shape()), " to reuse");
    ops::add(ctx, visual, *in.visual_residual, visual);
  } else {
    Tensor before;
    if (in.visual_residual) before = visual.clone();
    for (size_t i = 0; i < w.visual_blocks.size(); ++i)
      decoder_block(ctx, w.visual_blocks[i], silu_time, heads, visual, text, visual_rope_tables, key_mask,
                    nabla_ ? &sparse : nullptr, int(i));
    if (in.visual_residual) {
      ops::scale(ctx, before, -1.0f, before);  // residual = after - before (negation is exact)
      ops::add(ctx, visual, before, before);
      *in.visual_residual = std::move(before);
    }
  }

  // Output layer: modulated LayerNorm, Linear to patch * Cout features (C, p0, p1, p2), un-patch.
  const Modulation mod = modulation(ctx, silu_time, w.out_modulation, d);  // (shift, scale)
  ops::scale_shift_norm(ctx, visual, mod[1], mod[0], kLayerNormEps, visual);
  const Tensor y = ops::linear(ctx, visual, w.out_linear).to_device(Device::CPU);  // [N, Cout * patch]
  Tensor velocity = Tensor::empty(DType::F32, {T * p0, H * p1, W * p2, Cout});
  {
    const float* src = y.data<float>();
    float* dst = velocity.data<float>();
    ctx.pool().parallel_for(0, N, 64, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const int64_t pos = order[size_t(i)], t = pos / (H * W), h = pos / W % H, wq = pos % W;
        const float* row = src + i * Cout * patch;
        for (int64_t a = 0; a < p0; ++a)
          for (int64_t b = 0; b < p1; ++b)
            for (int64_t c = 0; c < p2; ++c) {
              float* pixel = dst + (((t * p0 + a) * H * p1 + h * p1 + b) * W * p2 + wq * p2 + c) * Cout;
              for (int64_t ch = 0; ch < Cout; ++ch) pixel[ch] = row[ch * patch + (a * p1 + b) * p2 + c];
            }
      }
    });
  }
  return velocity;
}

}  // namespace k5
