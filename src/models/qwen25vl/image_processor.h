// The Qwen2.5-VL input side for images: what transformers' processor does to a picture and to the prompt
// around it, reproduced exactly (tests/models/qwen25vl/vision_model_test.cpp, tools/golden/qwen_vision.py).
//
// Pixels: AutoProcessor.from_pretrained(qwen_dir, use_fast=True) gives Qwen2VLImageProcessor (torchvision
// backend). Per image: smart_resize to sides divisible by patch * merge (28) within [min_pixels,
// max_pixels]; torchvision resize of the uint8 image (BICUBIC, antialias=True, which on the CPU runs ATen's
// separable uint8 kernel: double weights of the Keys a = -0.5 cubic stretched by the downscale factor,
// rounded to int16 fixed point, width pass then height pass, each rounded and clamped to uint8); then
// (x - mean * 255) / (std * 255) in float32 (transformers fuses rescale 1/255 into normalise); then
// patchify: rows in (merge-block row, merge-block column, row in block, column in block) order, each row
// (channel, temporal copy, y, x) with the single image repeated temporal_patch_size times.
//
// Prompt: the processor expands each <|image_pad|> into grid_t * grid_h * grid_w / merge^2 copies, and
// the model's get_rope_index gives the M-RoPE positions: text positions count up, an image's tokens get
// (t, h, w) positions offset by the position where it starts, and text resumes at that start plus
// max(grid_h, grid_w) / merge (the largest image position + 1).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/image_file.h"

namespace k5 {

// preprocessor_config.json of a Qwen2.5-VL folder. Defaults are transformers' when a key is absent.
struct QwenImageProcessorConfig {
  int64_t min_pixels = 56 * 56;         // size.shortest_edge, overridden by min_pixels
  int64_t max_pixels = 28 * 28 * 1280;  // size.longest_edge, overridden by max_pixels
  int64_t patch_size = 14;
  int64_t temporal_patch_size = 2;
  int64_t merge_size = 2;
  bool do_resize = true;
  bool do_rescale = true;
  bool do_normalize = true;
  double rescale_factor = 1.0 / 255.0;
  std::array<double, 3> image_mean{0.48145466, 0.4578275, 0.40821073};  // OPENAI_CLIP_MEAN
  std::array<double, 3> image_std{0.26862954, 0.26130258, 0.27577711};  // OPENAI_CLIP_STD

  // `path`: preprocessor_config.json, or a folder holding it.
  static QwenImageProcessorConfig from_json_file(const std::string& path);
  int64_t factor() const { return patch_size * merge_size; }
};

// Patches of one image: temporal x height x width (grid_t is 1 for a still image).
struct QwenGridTHW {
  int64_t t = 1, h = 0, w = 0;
  int64_t patches() const { return t * h * w; }
  bool operator==(const QwenGridTHW&) const = default;
};

struct QwenImageSize {
  int64_t height = 0, width = 0;
};

// transformers' smart_resize: both sides multiples of `factor`, area within [min_pixels, max_pixels], the
// aspect ratio kept as far as possible. An aspect ratio above 200 (or an empty image) is an error.
QwenImageSize qwen_smart_resize(int64_t height, int64_t width, int64_t factor, int64_t min_pixels, int64_t max_pixels);

// torchvision.transforms.v2.functional.resize(uint8 CHW tensor, (height, width), BICUBIC, antialias=True)
// on the CPU, bit for bit.
Image resize_bicubic_antialias(const Image& image, int height, int width);

struct QwenPixelInputs {
  Tensor pixel_values;                      // F32 [sum of patches, channels * temporal_patch_size * patch_size^2]
  std::vector<QwenGridTHW> image_grid_thw;  // one per image
};

// The processor's image output for these RGB images, in order (pixel rows of the images concatenated).
QwenPixelInputs preprocess_qwen_images(const QwenImageProcessorConfig& config, const std::vector<Image>& images);

// The special tokens of image prompts (config.json: image_token_id, vision_start_token_id,
// vision_end_token_id; the released Qwen2.5-VL values by default).
struct QwenImageTokens {
  int32_t image_pad = 151655;
  int32_t vision_start = 151652;
  int32_t vision_end = 151653;
  static QwenImageTokens from_json_file(const std::string& config_path);
};

// Number of <|image_pad|> tokens an image becomes: patches / merge^2.
int64_t qwen_image_token_count(const QwenGridTHW& grid, int64_t merge_size);

// The processor's expansion: the i-th `image_pad` token of `input_ids` becomes qwen_image_token_count(
// grids[i]) copies. The number of image_pad tokens must equal the number of grids.
std::vector<int32_t> expand_image_pads(const std::vector<int32_t>& input_ids, int32_t image_pad,
                                       const std::vector<QwenGridTHW>& grids, int64_t merge_size);

// get_rope_index for one unpadded sequence of expanded input_ids: [3, L] row-major (temporal, height,
// width). Each run of consecutive `image_pad` tokens is the next image of `grids` and must hold exactly its
// token count; images only (no video).
std::vector<int64_t> qwen_mrope_positions(const std::vector<int32_t>& input_ids, int32_t image_pad,
                                          const std::vector<QwenGridTHW>& grids, int64_t merge_size);

}  // namespace k5
