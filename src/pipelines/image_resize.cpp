#include "pipelines/image_resize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/error.h"

namespace k5 {
namespace {

// The taps of one output position along one axis.
struct AxisWeights {
  int taps = 0;                // the largest tap count (ATen's max_interp_size)
  std::vector<int64_t> first;  // first input index per output index
  std::vector<int64_t> count;  // taps used per output index
  std::vector<float> weights;  // [output][taps], normalised to sum 1
};

// ATen's HelperInterpLinear weights for antialias=True, align_corners=False, no explicit scale
// (UpSampleKernel.cpp: _compute_index_ranges_weights / _compute_indices_min_size_weights_aa) in float32.
// The casts spell out C++'s promotions in that code: float*double products are rounded back to float where
// ATen stores them in a float, and `j + xmin - center` is a float subtraction.
AxisWeights antialias_bilinear_weights(int64_t input_size, int64_t output_size) {
  const float scale = static_cast<float>(input_size) / static_cast<float>(output_size);
  const float support = scale >= 1.0f ? static_cast<float>(1.0 * double(scale)) : 1.0f;
  const float inverse_scale = scale >= 1.0f ? static_cast<float>(1.0 / double(scale)) : 1.0f;
  AxisWeights axis;
  axis.taps = int(std::ceil(support)) * 2 + 1;
  axis.first.resize(size_t(output_size));
  axis.count.resize(size_t(output_size));
  axis.weights.assign(size_t(output_size) * axis.taps, 0.0f);
  for (int64_t i = 0; i < output_size; ++i) {
    const float center = static_cast<float>(double(scale) * (double(i) + 0.5));
    const int64_t first = std::max(static_cast<int64_t>(double(center - support) + 0.5), int64_t(0));
    int64_t count = std::min(static_cast<int64_t>(double(center + support) + 0.5), input_size) - first;
    count = std::clamp(count, int64_t(0), int64_t(axis.taps));
    float* weights = axis.weights.data() + i * axis.taps;
    float total = 0.0f;
    for (int64_t j = 0; j < count; ++j) {
      const float distance = std::fabs(static_cast<float>((double(float(j + first) - center) + 0.5) * inverse_scale));
      const float weight = distance < 1.0f ? static_cast<float>(1.0 - double(distance)) : 0.0f;
      weights[j] = weight;
      total += weight;
    }
    if (total != 0.0f)
      for (int64_t j = 0; j < count; ++j) weights[j] /= total;
    axis.first[size_t(i)] = first;
    axis.count[size_t(i)] = count;
  }
  return axis;
}

// a * b rounded to float on its own: the empty asm makes the product opaque, so the compiler cannot fuse
// it into the add that follows.
inline float unfused_product(float a, float b) {
  float product = a * b;
  asm("" : "+x"(product));
  return product;
}

// One separable pass over a float image [height, width, 3] stored row-major. `along_width` picks the axis.
// The sum is ATen's interpolate_aa_single_dim (`output = t0 * w0; output += t * w` in tap order) as the
// official torch 2.15 x86-64 wheel executes it (AVX-512 dispatch, GCC): the taps after the first are taken
// in blocks of four with separately rounded multiplies and adds (a vectorised in-order reduction), and the
// remaining (taps - 1) % 4 with fused multiply-adds (the contracted scalar tail). Found by fitting
// torch's float outputs; plain mul+add everywhere differs in about 1 of 2000 uint8 values, FMA everywhere
// in more. GCC contracts a * b + c into an FMA by default (-ffp-contract=fast), hence unfused_product.
std::vector<float> resample_axis(const std::vector<float>& input, int height, int width, int output_size,
                                 bool along_width) {
  const int input_size = along_width ? width : height;
  const AxisWeights axis = antialias_bilinear_weights(input_size, output_size);
  const int out_height = along_width ? height : output_size;
  const int out_width = along_width ? output_size : width;
  const size_t tap_stride = along_width ? 3 : size_t(width) * 3;
  std::vector<float> output(size_t(out_height) * out_width * 3);
  for (int y = 0; y < out_height; ++y) {
    for (int x = 0; x < out_width; ++x) {
      const int o = along_width ? x : y;
      const float* weights = axis.weights.data() + size_t(o) * axis.taps;
      const int64_t count = axis.count[size_t(o)];
      const size_t base = along_width ? (size_t(y) * width + size_t(axis.first[size_t(o)])) * 3
                                      : (size_t(axis.first[size_t(o)]) * width + size_t(x)) * 3;
      for (int c = 0; c < 3; ++c) {
        const float* source = input.data() + base + c;
        float sum = count > 0 ? unfused_product(source[0], weights[0]) : 0.0f;
        const int64_t blocked_end = count > 0 ? 1 + (count - 1) / 4 * 4 : 0;
        for (int64_t j = 1; j < blocked_end; ++j) sum += unfused_product(source[size_t(j) * tap_stride], weights[j]);
        for (int64_t j = std::max<int64_t>(blocked_end, 1); j < count; ++j)
          sum = std::fma(source[size_t(j) * tap_stride], weights[j], sum);
        output[(size_t(y) * out_width + x) * 3 + c] = sum;
      }
    }
  }
  return output;
}


// Pillow's Resample.c: separable convolution, support scaled by the reduction, coefficients normalised then
// held in 22-bit fixed point, rounding added once and the sum clipped to 8 bits after each pass.
constexpr int kPilPrecisionBits = 32 - 8 - 2;

double pil_bicubic(double x) {
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

struct PilTaps {
  int taps = 0;                  // ksize
  std::vector<int> first, count;  // per output position
  std::vector<int32_t> weights;   // [out, taps], fixed point
};

PilTaps pil_taps(int in_size, int out_size) {
  const double scale = double(in_size) / double(out_size);
  const double filter_scale = std::max(scale, 1.0);
  const double support = 2.0 * filter_scale;  // bicubic support 2
  PilTaps t;
  t.taps = int(std::ceil(support)) * 2 + 1;
  t.first.resize(size_t(out_size));
  t.count.resize(size_t(out_size));
  t.weights.assign(size_t(out_size) * size_t(t.taps), 0);
  std::vector<double> w(size_t(t.taps));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const int xmin = std::max(0, int(center - support + 0.5));
    const int xmax = std::min(in_size, int(center + support + 0.5)) - xmin;
    double sum = 0.0;
    for (int x = 0; x < xmax; ++x) sum += (w[size_t(x)] = pil_bicubic((x + xmin - center + 0.5) / filter_scale));
    for (int x = 0; x < xmax; ++x) {
      const double v = sum != 0.0 ? w[size_t(x)] / sum : w[size_t(x)];
      t.weights[size_t(xx) * size_t(t.taps) + size_t(x)] =
          int32_t(v < 0 ? -0.5 + v * (1 << kPilPrecisionBits) : 0.5 + v * (1 << kPilPrecisionBits));
    }
    t.first[size_t(xx)] = xmin;
    t.count[size_t(xx)] = xmax;
  }
  return t;
}

uint8_t pil_clip8(int64_t sum) {
  const int64_t v = sum >> kPilPrecisionBits;
  return uint8_t(std::clamp<int64_t>(v, 0, 255));
}

}  // namespace

Image resize_bilinear_antialias(const Image& image, int height, int width) {
  K5_CHECK(image.width > 0 && image.height > 0 && image.rgb.size() == size_t(image.width) * image.height * 3,
           "resize: invalid image (", image.width, "x", image.height, ", ", image.rgb.size(), " bytes)");
  K5_CHECK(height > 0 && width > 0, "resize: invalid target size ", width, "x", height);
  if (height == image.height && width == image.width) return image;  // F.resize returns its input
  std::vector<float> values(image.rgb.begin(), image.rgb.end());
  int current_width = image.width;
  if (width != image.width) {
    values = resample_axis(values, image.height, image.width, width, true);
    current_width = width;
  }
  if (height != image.height) values = resample_axis(values, image.height, current_width, height, false);
  // torchvision rounds half to even (torch.round) before the uint8 cast; the weights are non-negative and
  // sum to one, so values stay within [0, 255] up to rounding.
  Image result(width, height);
  for (size_t i = 0; i < values.size(); ++i)
    result.rgb[i] = uint8_t(std::clamp(std::nearbyint(values[i]), 0.0f, 255.0f));
  return result;
}

Image crop(const Image& image, int top, int left, int height, int width) {
  K5_CHECK(height > 0 && width > 0, "crop: invalid size ", width, "x", height);
  Image result(width, height);
  for (int y = 0; y < height; ++y) {
    const int source_y = top + y;
    if (source_y < 0 || source_y >= image.height) continue;
    for (int x = 0; x < width; ++x) {
      const int source_x = left + x;
      if (source_x < 0 || source_x >= image.width) continue;
      std::copy_n(image.pixel(source_x, source_y), 3, result.pixel(x, y));
    }
  }
  return result;
}

ResizedImage resize_image(const Image& image, double max_area, int divisibility) {
  K5_CHECK(image.width > 0 && image.height > 0, "resize_image: empty image");
  K5_CHECK(max_area > 0 && divisibility > 0, "resize_image: invalid max_area ", max_area, " or divisibility ",
           divisibility);
  const double area = double(image.height) * double(image.width);
  ResizedImage resized;
  resized.k = std::sqrt(max_area / area) / divisibility;
  // Python's round() on a float rounds half to even, as nearbyint does in the default rounding mode.
  const int new_height = int(std::nearbyint(image.height * resized.k) * divisibility);
  const int new_width = int(std::nearbyint(image.width * resized.k) * divisibility);
  K5_CHECK(new_height > 0 && new_width > 0, "resize_image: ", image.width, "x", image.height,
           " rounds to an empty image for max_area ", max_area, " and divisibility ", divisibility);
  resized.image = resize_bilinear_antialias(image, new_height, new_width);
  return resized;
}

Image resize_video(const Image& image, int height, int width) {
  K5_CHECK(image.width > 0 && image.height > 0, "resize_video: empty image");
  K5_CHECK(height > 0 && width > 0, "resize_video: invalid target size ", width, "x", height);
  const double scale_factor = std::min(double(image.height) / height, double(image.width) / width);
  const int scaled_height = int(double(image.height) / scale_factor);
  const int scaled_width = int(double(image.width) / scale_factor);
  const Image scaled = resize_bilinear_antialias(image, scaled_height, scaled_width);
  // Python's // floors; the differences are >= -1 only through float truncation, so floor explicitly.
  const auto floor_half = [](int value) { return value >= 0 ? value / 2 : -((-value + 1) / 2); };
  return crop(scaled, floor_half(scaled_height - height), floor_half(scaled_width - width), height, width);
}

Image resize_bicubic_pil(const Image& image, int height, int width) {
  K5_CHECK(height > 0 && width > 0 && image.width > 0 && image.height > 0, "resize: empty image or size ", width,
           "x", height);
  // Pillow resamples horizontally first (over the source rows the vertical pass uses), then vertically; a
  // pass whose size does not change is skipped.
  const PilTaps vertical = pil_taps(image.height, height);
  const int row_first = vertical.first.front();
  const int row_last = vertical.first.back() + vertical.count.back();
  Image current = image;
  int row_offset = 0;
  if (width != image.width) {
    const PilTaps horizontal = pil_taps(image.width, width);
    Image out(width, row_last - row_first);
    for (int y = 0; y < out.height; ++y)
      for (int x = 0; x < width; ++x)
        for (int c = 0; c < 3; ++c) {
          int64_t sum = int64_t(1) << (kPilPrecisionBits - 1);
          const int32_t* k = &horizontal.weights[size_t(x) * size_t(horizontal.taps)];
          for (int i = 0; i < horizontal.count[size_t(x)]; ++i)
            sum += int64_t(image.pixel(horizontal.first[size_t(x)] + i, y + row_first)[c]) * k[i];
          out.pixel(x, y)[c] = pil_clip8(sum);
        }
    current = std::move(out);
    row_offset = row_first;
  }
  if (height == image.height) return current;
  Image out(width, height);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c) {
        int64_t sum = int64_t(1) << (kPilPrecisionBits - 1);
        const int32_t* k = &vertical.weights[size_t(y) * size_t(vertical.taps)];
        for (int i = 0; i < vertical.count[size_t(y)]; ++i)
          sum += int64_t(current.pixel(x, vertical.first[size_t(y)] - row_offset + i)[c]) * k[i];
        out.pixel(x, y)[c] = pil_clip8(sum);
      }
  return out;
}

}  // namespace k5
