#include "models/qwen25vl/image_processor.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "io/json_fields.h"

namespace k5 {

namespace {

// ATen's antialiased cubic filter (Keys, a = -0.5 as PIL), in ATen's operation order: the double weights
// are rounded to int16 afterwards, so the order matters on rare ties.
double cubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
  return 0.0;
}

// One axis of the separable resize: for output i, the taps [first, first + weights.size()) of the input.
struct AxisTaps {
  std::vector<int64_t> first;
  std::vector<std::vector<int32_t>> weights;  // int16 values in fixed point with `precision` fraction bits
  int precision = 0;
};

// ATen's _compute_indices_weights_aa + _compute_indices_int16_weights_aa for bicubic (interp_size 4),
// align_corners=False: support 2 * scale when downscaling (filter stretched by the scale), else 2.
AxisTaps cubic_taps(int64_t input_size, int64_t output_size) {
  const double scale = double(input_size) / double(output_size);
  const double support = scale >= 1.0 ? 2.0 * scale : 2.0;
  const double inverse_scale = scale >= 1.0 ? 1.0 / scale : 1.0;
  std::vector<std::vector<double>> weights(static_cast<size_t>(output_size));
  AxisTaps taps;
  taps.first.resize(size_t(output_size));
  double largest = 0.0;
  for (int64_t i = 0; i < output_size; ++i) {
    const double center = scale * (double(i) + 0.5);
    const int64_t first = std::max(int64_t(center - support + 0.5), int64_t(0));
    const int64_t count = std::min(int64_t(center + support + 0.5), input_size) - first;
    std::vector<double>& w = weights[size_t(i)];
    double total = 0.0;
    for (int64_t j = 0; j < count; ++j) {
      w.push_back(cubic_filter((double(j + first) - center + 0.5) * inverse_scale));
      total += w.back();
    }
    for (double& value : w)
      if (total != 0.0) value /= total;
    for (double value : w) largest = std::max(largest, value);
    taps.first[size_t(i)] = first;
  }
  // The most fraction bits (at most 22) that keep the largest weight below 2^15.
  int precision = 0;
  for (; precision < 22; ++precision)
    if (int(0.5 + largest * double(1 << (precision + 1))) >= (1 << 15)) break;
  taps.precision = precision;
  taps.weights.resize(size_t(output_size));
  for (int64_t i = 0; i < output_size; ++i)
    for (double value : weights[size_t(i)])
      taps.weights[size_t(i)].push_back(value < 0 ? int(-0.5 + value * double(1 << precision))
                                                  : int(0.5 + value * double(1 << precision)));
  return taps;
}

// Resamples `lines` lines of `input_size` samples (3 channels each) along the line:
// sample s of line l of channel c is at data[l * line_stride + s * sample_stride + c].
std::vector<uint8_t> resample_axis(const uint8_t* data, int64_t lines, int64_t input_size, int64_t output_size,
                                   int64_t line_stride, int64_t sample_stride, int64_t out_line_stride,
                                   int64_t out_sample_stride, size_t out_bytes) {
  const AxisTaps taps = cubic_taps(input_size, output_size);
  std::vector<uint8_t> out(out_bytes);
  for (int64_t line = 0; line < lines; ++line) {
    for (int64_t i = 0; i < output_size; ++i) {
      const std::vector<int32_t>& w = taps.weights[size_t(i)];
      const uint8_t* base = data + line * line_stride + taps.first[size_t(i)] * sample_stride;
      for (int c = 0; c < 3; ++c) {
        int64_t sum = int64_t(1) << (taps.precision - 1);
        for (size_t j = 0; j < w.size(); ++j) sum += int64_t(base[int64_t(j) * sample_stride + c]) * w[j];
        out[size_t(line * out_line_stride + i * out_sample_stride + c)] =
            uint8_t(std::clamp<int64_t>(sum >> taps.precision, 0, 255));
      }
    }
  }
  return out;
}

std::string config_file(const std::string& path) {
  return std::filesystem::is_directory(path) ? (std::filesystem::path(path) / "preprocessor_config.json").string()
                                             : path;
}

std::array<double, 3> three_numbers(const JsonFields& fields, const std::string& key,
                                    const std::array<double, 3>& fallback) {
  if (!fields.has(key)) return fallback;
  const std::vector<double> values = fields.numbers(key);
  K5_CHECK(values.size() == 3, fields.source(), ": '", key, "' has ", values.size(), " values, expected 3");
  return {values[0], values[1], values[2]};
}

}  // namespace

QwenImageProcessorConfig QwenImageProcessorConfig::from_json_file(const std::string& path) {
  const std::string file = config_file(path);
  const nlohmann::json json = read_json_file(file);
  const JsonFields fields(json, file);
  QwenImageProcessorConfig config;
  if (fields.has("size")) {
    const JsonFields size = fields.object("size");
    config.min_pixels = size.integer("shortest_edge", config.min_pixels);
    config.max_pixels = size.integer("longest_edge", config.max_pixels);
  }
  config.min_pixels = fields.integer("min_pixels", config.min_pixels);
  config.max_pixels = fields.integer("max_pixels", config.max_pixels);
  config.patch_size = fields.integer("patch_size", config.patch_size);
  config.temporal_patch_size = fields.integer("temporal_patch_size", config.temporal_patch_size);
  config.merge_size = fields.integer("merge_size", config.merge_size);
  config.do_resize = fields.boolean("do_resize", config.do_resize);
  config.do_rescale = fields.boolean("do_rescale", config.do_rescale);
  config.do_normalize = fields.boolean("do_normalize", config.do_normalize);
  config.rescale_factor = fields.number("rescale_factor", config.rescale_factor);
  config.image_mean = three_numbers(fields, "image_mean", config.image_mean);
  config.image_std = three_numbers(fields, "image_std", config.image_std);
  const int64_t resample = fields.integer("resample", 3);
  K5_CHECK(resample == 3, file, ": resample ", resample, " is not supported (only 3, bicubic)");
  K5_CHECK(config.patch_size > 0 && config.temporal_patch_size > 0 && config.merge_size > 0, file,
           ": patch_size, temporal_patch_size and merge_size must be positive");
  K5_CHECK(config.min_pixels > 0 && config.max_pixels >= config.min_pixels, file, ": need 0 < min_pixels (",
           config.min_pixels, ") <= max_pixels (", config.max_pixels, ")");
  K5_CHECK(config.rescale_factor > 0, file, ": rescale_factor must be positive");
  for (int c = 0; c < 3; ++c) K5_CHECK(config.image_std[size_t(c)] != 0, file, ": image_std[", c, "] is zero");
  return config;
}

QwenImageSize qwen_smart_resize(int64_t height, int64_t width, int64_t factor, int64_t min_pixels, int64_t max_pixels) {
  K5_CHECK(height > 0 && width > 0, "qwen image: the image is empty (", width, "x", height, ")");
  const double ratio = double(std::max(height, width)) / double(std::min(height, width));
  K5_CHECK(ratio <= 200, "qwen image: ", width, "x", height, " has aspect ratio ", ratio,
           ", the processor accepts at most 200");
  const double f = double(factor);
  // Python's round(): half to even, which nearbyint does in the default rounding mode.
  int64_t h_bar = int64_t(std::nearbyint(double(height) / f)) * factor;
  int64_t w_bar = int64_t(std::nearbyint(double(width) / f)) * factor;
  if (h_bar * w_bar > max_pixels) {
    const double beta = std::sqrt(double(height * width) / double(max_pixels));
    h_bar = std::max(factor, int64_t(std::floor(double(height) / beta / f)) * factor);
    w_bar = std::max(factor, int64_t(std::floor(double(width) / beta / f)) * factor);
  } else if (h_bar * w_bar < min_pixels) {
    const double beta = std::sqrt(double(min_pixels) / double(height * width));
    h_bar = int64_t(std::ceil(double(height) * beta / f)) * factor;
    w_bar = int64_t(std::ceil(double(width) * beta / f)) * factor;
  }
  return {h_bar, w_bar};
}

Image resize_bicubic_antialias(const Image& image, int height, int width) {
  K5_CHECK(image.width > 0 && image.height > 0 && height > 0 && width > 0, "resize: cannot resize ", image.width, "x",
           image.height, " to ", width, "x", height);
  // Width pass first, then height, each rounded to uint8 (an axis that keeps its size is not resampled).
  Image current = image;
  if (width != image.width) {
    Image next(width, current.height);
    next.rgb = resample_axis(current.rgb.data(), current.height, current.width, width, int64_t(current.width) * 3, 3,
                             int64_t(width) * 3, 3, next.rgb.size());
    current = std::move(next);
  }
  if (height != image.height) {
    Image next(current.width, height);
    next.rgb = resample_axis(current.rgb.data(), current.width, current.height, height, 3, int64_t(current.width) * 3,
                             3, int64_t(current.width) * 3, next.rgb.size());
    current = std::move(next);
  }
  return current;
}

QwenPixelInputs preprocess_qwen_images(const QwenImageProcessorConfig& config, const std::vector<Image>& images) {
  K5_CHECK(!images.empty(), "qwen image: no images");
  const int64_t p = config.patch_size, m = config.merge_size, T = config.temporal_patch_size;
  const int64_t row_size = 3 * T * p * p;
  // Fused rescale + normalise as transformers does it: float32 mean * (1 / rescale_factor), then
  // (x - mean) / std in float32.
  std::array<float, 3> mean{}, std{};
  for (size_t c = 0; c < 3; ++c) {
    const float unscale = config.do_rescale ? float(1.0 / config.rescale_factor) : 1.0f;
    mean[c] = float(config.image_mean[c]) * unscale;
    std[c] = float(config.image_std[c]) * unscale;
  }
  std::vector<Image> resized;
  QwenPixelInputs inputs;
  int64_t rows = 0;
  for (const Image& image : images) {
    Image current = image;
    if (config.do_resize) {
      const QwenImageSize size =
          qwen_smart_resize(image.height, image.width, config.factor(), config.min_pixels, config.max_pixels);
      if (size.height != image.height || size.width != image.width)
        current = resize_bicubic_antialias(image, int(size.height), int(size.width));
    }
    K5_CHECK(current.height % config.factor() == 0 && current.width % config.factor() == 0,
             "qwen image: ", current.width, "x", current.height, " is not a multiple of ", config.factor(),
             " (do_resize is off)");
    const QwenGridTHW grid{1, current.height / p, current.width / p};
    inputs.image_grid_thw.push_back(grid);
    rows += grid.patches();
    resized.push_back(std::move(current));
  }

  inputs.pixel_values = Tensor::empty(DType::F32, {rows, row_size});
  float* out = inputs.pixel_values.data<float>();
  for (size_t n = 0; n < resized.size(); ++n) {
    const Image& image = resized[n];
    const int64_t blocks_w = inputs.image_grid_thw[n].w / m;
    const int64_t blocks = inputs.image_grid_thw[n].h / m * blocks_w;
    // Rows: (block, row in block, column in block); each row (channel, temporal copy, y, x).
    for (int64_t block = 0; block < blocks; ++block) {
      for (int64_t in_block = 0; in_block < m * m; ++in_block, out += row_size) {
        const int64_t y0 = ((block / blocks_w) * m + in_block / m) * p;
        const int64_t x0 = ((block % blocks_w) * m + in_block % m) * p;
        for (int64_t c = 0; c < 3; ++c) {
          for (int64_t y = 0; y < p; ++y) {
            for (int64_t x = 0; x < p; ++x) {
              float value = float(image.pixel(int(x0 + x), int(y0 + y))[c]);
              if (config.do_normalize)
                value = (value - mean[size_t(c)]) / std[size_t(c)];
              else if (config.do_rescale)
                value = value * float(config.rescale_factor);
              for (int64_t t = 0; t < T; ++t) out[((c * T + t) * p + y) * p + x] = value;
            }
          }
        }
      }
    }
  }
  return inputs;
}

QwenImageTokens QwenImageTokens::from_json_file(const std::string& config_path) {
  const nlohmann::json json = read_json_file(config_path);
  const JsonFields fields(json, config_path);
  QwenImageTokens tokens;
  tokens.image_pad = int32_t(fields.integer("image_token_id", tokens.image_pad));
  tokens.vision_start = int32_t(fields.integer("vision_start_token_id", tokens.vision_start));
  tokens.vision_end = int32_t(fields.integer("vision_end_token_id", tokens.vision_end));
  return tokens;
}

int64_t qwen_image_token_count(const QwenGridTHW& grid, int64_t merge_size) {
  return grid.patches() / (merge_size * merge_size);
}

std::vector<int32_t> expand_image_pads(const std::vector<int32_t>& input_ids, int32_t image_pad,
                                       const std::vector<QwenGridTHW>& grids, int64_t merge_size) {
  std::vector<int32_t> expanded;
  size_t image = 0;
  for (int32_t id : input_ids) {
    if (id != image_pad) {
      expanded.push_back(id);
      continue;
    }
    K5_CHECK(image < grids.size(), "qwen prompt: more image tokens than the ", grids.size(), " images");
    expanded.insert(expanded.end(), size_t(qwen_image_token_count(grids[image++], merge_size)), image_pad);
  }
  K5_CHECK(image == grids.size(), "qwen prompt: ", image, " image tokens for ", grids.size(), " images");
  return expanded;
}

std::vector<int64_t> qwen_mrope_positions(const std::vector<int32_t>& input_ids, int32_t image_pad,
                                          const std::vector<QwenGridTHW>& grids, int64_t merge_size) {
  const size_t L = input_ids.size();
  std::vector<int64_t> positions(3 * L);
  int64_t next = 0;  // the position the next text token gets
  size_t image = 0;
  for (size_t i = 0; i < L;) {
    if (input_ids[i] != image_pad) {
      for (size_t row = 0; row < 3; ++row) positions[row * L + i] = next;
      ++next, ++i;
      continue;
    }
    size_t end = i;
    while (end < L && input_ids[end] == image_pad) ++end;
    K5_CHECK(image < grids.size(), "qwen prompt: more image token runs than the ", grids.size(), " images");
    const QwenGridTHW& grid = grids[image++];
    const int64_t gh = grid.h / merge_size, gw = grid.w / merge_size;
    K5_CHECK(int64_t(end - i) == grid.t * gh * gw, "qwen prompt: image ", image - 1, " has ", end - i,
             " tokens, its grid ", grid.t, "x", grid.h, "x", grid.w, " needs ", grid.t * gh * gw);
    for (int64_t t = 0, k = 0; t < grid.t; ++t)
      for (int64_t h = 0; h < gh; ++h)
        for (int64_t w = 0; w < gw; ++w, ++k) {
          positions[i + size_t(k)] = next + t;
          positions[L + i + size_t(k)] = next + h;
          positions[2 * L + i + size_t(k)] = next + w;
        }
    next += std::max(gh, gw);
    i = end;
  }
  K5_CHECK(image == grids.size(), "qwen prompt: ", image, " image token runs for ", grids.size(), " images");
  return positions;
}

}  // namespace k5
