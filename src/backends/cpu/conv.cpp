// Convolution as im2col + SGEMM. The column buffer covers a band of output rows of one output frame, so the
// extra memory stays bounded (~16 MB) whatever the frame size; padding (zeros or replicate) is resolved while
// gathering, so no padded copy of the input is ever made.
#include "backends/cpu/conv.h"

#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace k5::cpu {
namespace {

constexpr int64_t kColumnBudgetFloats = int64_t(16) << 20;

void sgemm(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
           const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const dnnl_status_t status = dnnl_sgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  K5_CHECK(status == dnnl_success, "oneDNN sgemm failed (status ", int(status), ") for ", m, "x", n, "x", k);
}

// Maps a padded coordinate to the input index, or -1 for a zero-padded position.
inline int64_t source_index(int64_t padded, int64_t size, ops::PadMode mode) {
  if (padded >= 0 && padded < size) return padded;
  if (mode == ops::PadMode::zeros) return -1;
  return padded < 0 ? 0 : size - 1;
}

}  // namespace

void conv3d(Context& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const ops::ConvGeometry& geometry,
            Tensor& out, bool accumulate) {
  // oneDNN's direct convolution is the faster path (bench/results/vae-cpu.md); K5_CONV=im2col selects the
  // im2col + SGEMM path below (kept as the simple reference implementation).
  static const bool use_im2col = [] {
    const char* choice = std::getenv("K5_CONV");
    return choice != nullptr && std::string(choice) == "im2col";
  }();
  if (!use_im2col) {
    conv3d_dnnl(ctx, x, weight, bias, geometry, out, accumulate);
    return;
  }
  const int64_t channels = x.size(0), frames = x.size(1), height = x.size(2), width = x.size(3);
  const int64_t out_channels = weight.size(0), kt = weight.size(2), kh = weight.size(3), kw = weight.size(4);
  const int64_t out_frames = out.size(1), out_height = out.size(2), out_width = out.size(3);
  const int64_t plane = out_frames * out_height * out_width;
  const int64_t reduction = channels * kt * kh * kw;
  const auto [stride_t, stride_h, stride_w] = geometry.stride;
  const int64_t pad_t = geometry.pad_before[0], pad_h = geometry.pad_before[1], pad_w = geometry.pad_before[2];
  const float* input = x.data<float>();
  const float* kernel = weight.data<float>();
  float* output = out.data<float>();

  // Bias (and the residual when accumulating) go in first; the GEMMs then accumulate with beta = 1.
  const float* bias_values = bias ? bias->data<float>() : nullptr;
  ctx.pool().parallel_for(0, out_channels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      float* row = output + o * plane;
      const float b = bias_values ? bias_values[o] : 0.0f;
      if (!accumulate) {
        std::fill(row, row + plane, b);
      } else if (b != 0.0f) {
        for (int64_t i = 0; i < plane; ++i) row[i] += b;
      }
    }
  });

  const bool pointwise = kt == 1 && kh == 1 && kw == 1 && stride_t == 1 && stride_h == 1 && stride_w == 1 &&
                         pad_t == 0 && pad_h == 0 && pad_w == 0 && geometry.pad_after == std::array<int, 3>{0, 0, 0};
  if (pointwise) {
    sgemm('N', 'N', out_channels, plane, channels, 1.0f, kernel, reduction, input, plane, 1.0f, output, plane);
    return;
  }

  const int64_t band_rows = std::clamp<int64_t>(kColumnBudgetFloats / std::max<int64_t>(1, reduction * out_width), 1,
                                                out_height);
  std::vector<float> columns(size_t(reduction * band_rows * out_width));
  for (int64_t to = 0; to < out_frames; ++to) {
    for (int64_t row0 = 0; row0 < out_height; row0 += band_rows) {
      const int64_t rows = std::min(band_rows, out_height - row0);
      const int64_t n = rows * out_width;
      // columns[(c, kt, kh, kw), (row, wo)] = x_padded[c, to*st + kt, row*sh + kh, wo*sw + kw]
      const auto gather = [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const int64_t c = r / (kt * kh * kw);
          const int64_t dt = (r / (kh * kw)) % kt, dh = (r / kw) % kh, dw = r % kw;
          float* column = columns.data() + r * n;
          const int64_t ti = source_index(to * stride_t - pad_t + dt, frames, geometry.pad_mode);
          if (ti < 0) {
            std::fill(column, column + n, 0.0f);
            continue;
          }
          for (int64_t row = 0; row < rows; ++row) {
            float* dst = column + row * out_width;
            const int64_t hi = source_index((row0 + row) * stride_h - pad_h + dh, height, geometry.pad_mode);
            if (hi < 0) {
              std::fill(dst, dst + out_width, 0.0f);
              continue;
            }
            const float* src = input + ((c * frames + ti) * height + hi) * width;
            // Output columns whose source lies inside the row: wo in [lo, hi_end).
            const int64_t offset = dw - pad_w;
            int64_t lo = offset >= 0 ? 0 : (-offset + stride_w - 1) / stride_w;
            int64_t hi_end = width - 1 - offset < 0 ? 0 : (width - 1 - offset) / stride_w + 1;
            lo = std::min(lo, out_width);
            hi_end = std::clamp(hi_end, lo, out_width);
            const float left = geometry.pad_mode == ops::PadMode::zeros ? 0.0f : src[0];
            const float right = geometry.pad_mode == ops::PadMode::zeros ? 0.0f : src[width - 1];
            for (int64_t wo = 0; wo < lo; ++wo) dst[wo] = left;
            if (stride_w == 1) {
              std::memcpy(dst + lo, src + lo + offset, size_t(hi_end - lo) * sizeof(float));
            } else {
              for (int64_t wo = lo; wo < hi_end; ++wo) dst[wo] = src[wo * stride_w + offset];
            }
            for (int64_t wo = hi_end; wo < out_width; ++wo) dst[wo] = right;
          }
        }
      };
      // The gather runs on the GEMM's OpenMP team (sized like ctx.pool() by the Context): handing over
      // between our pool and OpenMP's spinning workers on every band cost ~20% of the time on 2 cores.
#pragma omp parallel
      {
        const int64_t team = omp_get_num_threads(), member = omp_get_thread_num();
        const int64_t chunk = (reduction + team - 1) / team;
        gather(std::min(reduction, member * chunk), std::min(reduction, (member + 1) * chunk));
      }
      sgemm('N', 'N', out_channels, n, reduction, 1.0f, kernel, reduction, columns.data(), n, 1.0f,
            output + (to * out_height + row0) * out_width, plane);
    }
  }
}

}  // namespace k5::cpu
