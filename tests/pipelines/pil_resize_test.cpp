// resize_bicubic_pil against PIL's Image.resize (tools/golden/pil_resize.py): byte-exact.
#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "pipelines/image_resize.h"
#include "support/compare.h"

namespace k5 {
namespace {

Image from_tensor(const Tensor& t) {
  Image image(int(t.size(1)), int(t.size(0)));
  std::copy_n(t.data<uint8_t>(), image.rgb.size(), image.rgb.begin());
  return image;
}

TEST(PilResize, BicubicMatchesPillow) {
  const auto file = SafetensorsFile::open(test::source_path("tests/golden/image_resize/pil_cases.safetensors"));
  int cases = 0;
  for (const auto& info : file->tensors()) {
    const std::string suffix = ".input";
    if (info.name.size() <= suffix.size() || info.name.compare(info.name.size() - suffix.size(), suffix.size(), suffix))
      continue;
    const std::string name = info.name.substr(0, info.name.size() - suffix.size());
    SCOPED_TRACE(name);
    const Image want = from_tensor(file->tensor(name + ".output"));
    const Image got = resize_bicubic_pil(from_tensor(file->tensor(info.name)), want.height, want.width);
    ASSERT_EQ(got.width, want.width);
    ASSERT_EQ(got.height, want.height);
    int differing = 0;
    for (size_t i = 0; i < got.rgb.size(); ++i) differing += got.rgb[i] != want.rgb[i];
    EXPECT_EQ(differing, 0);
    ++cases;
  }
  EXPECT_EQ(cases, 7);
}

}  // namespace
}  // namespace k5
