#include "pipelines/image_resize.h"

#include <gtest/gtest.h>

#include <cstring>
#include <sstream>

#include "core/error.h"
#include "io/safetensors.h"
#include "support/compare.h"

namespace k5 {
namespace {

Image image_from_tensor(const Tensor& tensor) {
  EXPECT_EQ(tensor.dtype(), DType::U8);
  EXPECT_EQ(tensor.dim(), 3);
  Image image(int(tensor.size(1)), int(tensor.size(0)));
  const Tensor contiguous = tensor.contiguous();
  std::memcpy(image.rgb.data(), contiguous.raw(), image.rgb.size());
  return image;
}

// tests/golden/image_resize/cases.safetensors from tools/golden/image_resize.py (torchvision 0.29.2,
// torch 2.15.0): the results must be identical, byte for byte.
TEST(ImageResize, MatchesTorchvisionExactly) {
  const auto file = SafetensorsFile::open(test::source_path("tests/golden/image_resize/cases.safetensors"));
  ASSERT_FALSE(file->metadata().empty());
  for (const auto& [name, description] : file->metadata()) {
    if (name == "format") continue;
    std::istringstream words(description);
    std::string operation;
    double first = 0, second = 0;
    words >> operation >> first >> second;
    const Image input = image_from_tensor(file->tensor(name + ".input"));
    const Image expected = image_from_tensor(file->tensor(name + ".output"));
    Image actual;
    if (operation == "resize")
      actual = resize_bilinear_antialias(input, int(first), int(second));
    else if (operation == "resize_image")
      actual = resize_image(input, first, int(second)).image;
    else if (operation == "resize_video")
      actual = resize_video(input, int(first), int(second));
    else
      FAIL() << "unknown operation " << operation;
    ASSERT_EQ(actual.width, expected.width) << name;
    ASSERT_EQ(actual.height, expected.height) << name;
    size_t mismatches = 0;
    int worst = 0;
    for (size_t i = 0; i < actual.rgb.size(); ++i) {
      const int difference = std::abs(int(actual.rgb[i]) - int(expected.rgb[i]));
      mismatches += difference != 0;
      worst = std::max(worst, difference);
    }
    EXPECT_EQ(mismatches, 0u) << name << ": " << mismatches << " of " << actual.rgb.size()
                              << " values differ, by at most " << worst;
  }
}

TEST(ImageResize, ResizeImageRoundsHalfToEvenLikePython) {
  // 1x4, max_area 25: k = sqrt(25 / 4) = 2.5, so round(1 * 2.5) = 2 (not 3) and round(4 * 2.5) = 10.
  const ResizedImage resized = resize_image(Image(4, 1), 25, 1);
  EXPECT_DOUBLE_EQ(resized.k, 2.5);
  EXPECT_EQ(resized.image.height, 2);
  EXPECT_EQ(resized.image.width, 10);
}

TEST(ImageResize, SameSizeIsIdentityAndCropPadsWithZeros) {
  Image image(3, 2);
  for (size_t i = 0; i < image.rgb.size(); ++i) image.rgb[i] = uint8_t(i + 1);
  EXPECT_EQ(resize_bilinear_antialias(image, 2, 3).rgb, image.rgb);
  const Image window = crop(image, -1, 1, 2, 3);
  ASSERT_EQ(window.width, 3);
  ASSERT_EQ(window.height, 2);
  const std::vector<uint8_t> expected = {0, 0, 0, 0, 0, 0, 0, 0, 0,   // row -1: outside
                                         4, 5, 6, 7, 8, 9, 0, 0, 0};  // row 0, columns 1, 2, 3 (outside)
  EXPECT_EQ(window.rgb, expected);
  EXPECT_THROW(resize_bilinear_antialias(image, 0, 3), Error);
}

}  // namespace
}  // namespace k5
