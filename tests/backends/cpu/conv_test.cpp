// The VAE ops (src/ops/conv.h) against direct, loop-by-loop reference implementations written from the
// PyTorch definitions (Conv3d + F.pad, GroupNorm, F.interpolate nearest, masked softmax attention).
// End-to-end parity with PyTorch itself is in tests/models/vae_*.
#include "ops/conv.h"

#include <gtest/gtest.h>

#include <cmath>

#include "support/compare.h"
#include "support/random.h"

namespace k5 {
namespace {

using test::random_tensor;

Tensor reference_conv3d(const Tensor& x, const Tensor& w, const Tensor* bias, const ops::ConvGeometry& g) {
  const Shape out_shape = ops::conv3d_output_shape(x.shape(), w.shape(), g);
  const auto xv = x.to_f32_vector(), wv = w.to_f32_vector();
  const int64_t C = x.size(0), T = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t O = w.size(0), KT = w.size(2), KH = w.size(3), KW = w.size(4);
  std::vector<float> out(size_t(shape_numel(out_shape)));
  const auto read = [&](int64_t c, int64_t t, int64_t h, int64_t ww) -> double {
    if (g.pad_mode == ops::PadMode::replicate) {
      t = std::clamp<int64_t>(t, 0, T - 1), h = std::clamp<int64_t>(h, 0, H - 1),
      ww = std::clamp<int64_t>(ww, 0, W - 1);
    } else if (t < 0 || t >= T || h < 0 || h >= H || ww < 0 || ww >= W) {
      return 0.0;
    }
    return xv[size_t(((c * T + t) * H + h) * W + ww)];
  };
  size_t index = 0;
  for (int64_t o = 0; o < O; ++o)
    for (int64_t t = 0; t < out_shape[1]; ++t)
      for (int64_t h = 0; h < out_shape[2]; ++h)
        for (int64_t ww = 0; ww < out_shape[3]; ++ww) {
          double sum = bias ? bias->to_f32_vector()[size_t(o)] : 0.0;
          for (int64_t c = 0; c < C; ++c)
            for (int64_t a = 0; a < KT; ++a)
              for (int64_t b = 0; b < KH; ++b)
                for (int64_t d = 0; d < KW; ++d)
                  sum += wv[size_t((((o * C + c) * KT + a) * KH + b) * KW + d)] *
                         read(c, t * g.stride[0] - g.pad_before[0] + a, h * g.stride[1] - g.pad_before[1] + b,
                              ww * g.stride[2] - g.pad_before[2] + d);
          out[index++] = float(sum);
        }
  return Tensor::from_f32(out, out_shape);
}

void check_conv(const Shape& x_shape, const Shape& w_shape, const ops::ConvGeometry& geometry,
                bool accumulate = false) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  const Tensor x = random_tensor(x_shape, 1), w = random_tensor(w_shape, 2), bias = random_tensor({w_shape[0]}, 3);
  Tensor expected = reference_conv3d(x, w, &bias, geometry);
  Tensor out = Tensor::empty(DType::F32, ops::conv3d_output_shape(x_shape, w_shape, geometry));
  if (accumulate) {
    const Tensor residual = random_tensor(out.shape(), 4);
    out.copy_from(residual);
    std::vector<float> sum = expected.to_f32_vector(), r = residual.to_f32_vector();
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += r[i];
    expected = Tensor::from_f32(sum, expected.shape());
  }
  ops::conv3d(ctx, x, w, &bias, geometry, out, accumulate);
  EXPECT_LE(test::relative_l2(out, expected), 1e-5);
}

TEST(ConvOps, CausalConvReplicatePadding) {
  check_conv({3, 4, 5, 6}, {5, 3, 3, 3, 3}, ops::causal_conv_geometry(3, 3, 3));
}

TEST(ConvOps, CausalConvStridedDownsample) {
  check_conv({4, 5, 8, 7}, {4, 4, 3, 3, 3}, ops::causal_conv_geometry(3, 3, 3, {2, 2, 2}));
  check_conv({4, 5, 8, 7}, {4, 4, 3, 3, 3}, ops::causal_conv_geometry(3, 3, 3, {1, 2, 2}));
}

TEST(ConvOps, ZeroPaddedImageConvAndAsymmetricPad) {
  ops::ConvGeometry same;
  same.pad_before = {0, 1, 1};
  same.pad_after = {0, 1, 1};
  check_conv({3, 1, 9, 10}, {6, 3, 1, 3, 3}, same);
  ops::ConvGeometry down;  // FLUX Downsample2D: pad right/bottom by one, stride 2
  down.stride = {1, 2, 2};
  down.pad_after = {0, 1, 1};
  check_conv({3, 1, 8, 10}, {3, 3, 1, 3, 3}, down);
}

TEST(ConvOps, PointwiseAndAccumulate) {
  check_conv({6, 2, 3, 4}, {5, 6, 1, 1, 1}, {});
  check_conv({6, 2, 3, 4}, {6, 6, 3, 3, 3}, ops::causal_conv_geometry(3, 3, 3), /*accumulate=*/true);
}

TEST(ConvOps, GroupNormWithSilu) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  const Tensor x = random_tensor({8, 3, 4, 5}, 5), gamma = random_tensor({8}, 6), beta = random_tensor({8}, 7);
  Tensor out = Tensor::empty(DType::F32, x.shape());
  ops::group_norm(ctx, x, 4, &gamma, &beta, 1e-6f, true, out);
  const auto xv = x.to_f32_vector(), gv = gamma.to_f32_vector(), bv = beta.to_f32_vector();
  std::vector<float> expected(xv.size());
  const size_t per_channel = 60, per_group = 120;
  for (size_t g = 0; g < 4; ++g) {
    double mean = 0, var = 0;
    for (size_t i = 0; i < per_group; ++i) mean += xv[g * per_group + i];
    mean /= per_group;
    for (size_t i = 0; i < per_group; ++i) var += (xv[g * per_group + i] - mean) * (xv[g * per_group + i] - mean);
    var /= per_group;
    for (size_t i = 0; i < per_group; ++i) {
      const size_t index = g * per_group + i, c = index / per_channel;
      const double y = (xv[index] - mean) / std::sqrt(var + 1e-6) * gv[c] + bv[c];
      expected[index] = float(y / (1 + std::exp(-y)));
    }
  }
  EXPECT_LE(test::relative_l2(out.to_f32_vector(), expected), 1e-6);
}

TEST(ConvOps, CausalUpsampleKeepsFirstFrameAlone) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  const Tensor x = random_tensor({2, 3, 2, 3}, 8);
  Tensor out = Tensor::empty(DType::F32, ops::upsample_nearest_shape(x.shape(), 2, 2, 2, true));
  ASSERT_EQ(out.shape(), (Shape{2, 5, 4, 6}));
  ops::upsample_nearest(ctx, x, 2, 2, 2, true, out);
  const auto xv = x.to_f32_vector(), ov = out.to_f32_vector();
  const int source_frame[5] = {0, 1, 1, 2, 2};
  for (int c = 0; c < 2; ++c)
    for (int t = 0; t < 5; ++t)
      for (int h = 0; h < 4; ++h)
        for (int w = 0; w < 6; ++w)
          ASSERT_EQ(ov[size_t(((c * 5 + t) * 4 + h) * 6 + w)],
                    xv[size_t(((c * 3 + source_frame[t]) * 2 + h / 2) * 3 + w / 2)]);
}

TEST(ConvOps, FrameCausalAttention) {
  Context ctx({.threads = 2, .precision = Precision::fp32});
  const int64_t dim = 8, frames = 3, per_frame = 300, tokens = frames * per_frame;  // chunks cross 256
  const Tensor q = random_tensor({dim, tokens}, 9), k = random_tensor({dim, tokens}, 10),
               v = random_tensor({dim, tokens}, 11);
  Tensor out = Tensor::empty(DType::F32, {dim, tokens});
  ops::frame_causal_attention(ctx, q, k, v, int(frames), out);
  const auto qv = q.to_f32_vector(), kv = k.to_f32_vector(), vv = v.to_f32_vector();
  std::vector<float> expected(size_t(dim * tokens));
  for (int64_t i = 0; i < tokens; ++i) {
    const int64_t visible = (i / per_frame + 1) * per_frame;
    std::vector<double> p(static_cast<size_t>(visible));
    double maximum = -1e300, sum = 0;
    for (int64_t j = 0; j < visible; ++j) {
      double s = 0;
      for (int64_t d = 0; d < dim; ++d) s += double(qv[size_t(d * tokens + i)]) * kv[size_t(d * tokens + j)];
      p[size_t(j)] = s / std::sqrt(double(dim));
      maximum = std::max(maximum, p[size_t(j)]);
    }
    for (double& e : p) sum += (e = std::exp(e - maximum));
    for (int64_t d = 0; d < dim; ++d) {
      double acc = 0;
      for (int64_t j = 0; j < visible; ++j) acc += p[size_t(j)] / sum * vv[size_t(d * tokens + j)];
      expected[size_t(d * tokens + i)] = float(acc);
    }
  }
  EXPECT_LE(test::relative_l2(out.to_f32_vector(), expected), 1e-5);
}

TEST(ConvOps, RejectsBadArguments) {
  Context ctx({.threads = 1, .precision = Precision::fp32});
  const Tensor x = random_tensor({3, 2, 4, 4}, 12), w = random_tensor({4, 2, 3, 3, 3}, 13);
  Tensor out = Tensor::empty(DType::F32, {4, 2, 4, 4});
  EXPECT_THROW(ops::conv3d(ctx, x, w, nullptr, ops::causal_conv_geometry(3, 3, 3), out), Error);  // channels
  Tensor norm_out = Tensor::empty(DType::F32, x.shape());
  EXPECT_THROW(ops::group_norm(ctx, x, 2, nullptr, nullptr, 1e-6f, false, norm_out), Error);  // 3 % 2
  Tensor attention_out = Tensor::empty(DType::F32, {4, 10});
  const Tensor q = random_tensor({4, 10}, 14);
  EXPECT_THROW(ops::frame_causal_attention(ctx, q, q, q, 3, attention_out), Error);  // 10 % 3
}

}  // namespace
}  // namespace k5
