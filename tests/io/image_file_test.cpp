#include "io/image_file.h"

#include <gtest/gtest.h>
#include <png.h>
// clang-format off
#include <cstdio>
#include <jpeglib.h>
// clang-format on
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>

#include "core/error.h"
#include "io/io_test_util.h"

namespace k5 {
namespace {

using test::read_bytes;
using test::ScratchDir;
using test::write_bytes;

// A smooth pattern (lossy codecs keep it close) with some detail in every channel.
Image test_pattern(int width, int height) {
  Image image(width, height);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      uint8_t* p = image.pixel(x, y);
      p[0] = uint8_t(255 * x / std::max(width - 1, 1));
      p[1] = uint8_t(255 * y / std::max(height - 1, 1));
      p[2] = uint8_t(128 + 100 * std::sin(0.2 * (x + y)));
    }
  return image;
}

Image random_image(int width, int height, uint32_t seed) {
  Image image(width, height);
  std::mt19937 rng(seed);
  for (auto& v : image.rgb) v = uint8_t(rng());
  return image;
}

double mean_absolute_difference(const Image& a, const Image& b) {
  EXPECT_EQ(a.rgb.size(), b.rgb.size());
  double total = 0;
  for (size_t i = 0; i < std::min(a.rgb.size(), b.rgb.size()); ++i) total += std::abs(int(a.rgb[i]) - int(b.rgb[i]));
  return total / double(std::max<size_t>(a.rgb.size(), 1));
}

// A PNG in any layout libpng's simplified writer supports (gray, gray+alpha, RGBA, 16-bit, palette).
std::vector<uint8_t> libpng_encode(int width, int height, png_uint_32 format, const void* pixels,
                                   const void* colormap = nullptr, int colormap_entries = 0) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = png_uint_32(width);
  image.height = png_uint_32(height);
  image.format = format;
  image.colormap_entries = png_uint_32(colormap_entries);
  png_alloc_size_t size = 0;
  EXPECT_TRUE(png_image_write_to_memory(&image, nullptr, &size, 0, pixels, 0, colormap)) << image.message;
  std::vector<uint8_t> bytes(size);
  EXPECT_TRUE(png_image_write_to_memory(&image, bytes.data(), &size, 0, pixels, 0, colormap)) << image.message;
  bytes.resize(size);
  return bytes;
}

const ImageMetadata kMetadata = {
    {"prompt", "a red fox, \"snow\" & <light>\nsecond line \\ done"}, {"seed", "42"}, {"model", "kandinsky5lite_t2i"}};

TEST(ImageFile, PngRoundTripIsExactWithMetadata) {
  ScratchDir dir;
  const Image image = random_image(23, 17, 1);
  write_image(dir.file("a.png"), image, kMetadata);
  const Image back = read_image(dir.file("a.png"));
  EXPECT_EQ(back.width, 23);
  EXPECT_EQ(back.height, 17);
  EXPECT_EQ(back.rgb, image.rgb);
  EXPECT_EQ(read_image_metadata(dir.file("a.png")), kMetadata);
}

TEST(ImageFile, PngMetadataKeepsUtf8) {
  ScratchDir dir;
  const ImageMetadata metadata = {{"prompt", "Кот в сапогах, 猫"}};
  write_image(dir.file("u.png"), test_pattern(4, 4), metadata);
  EXPECT_EQ(read_image_metadata(dir.file("u.png")), metadata);
}

// A lossy round trip at quality 95 with kMetadata: the size and the metadata kept, the pixels close.
void expect_lossy_round_trip(const std::string& path, const Image& image, double max_mean_difference) {
  write_image(path, image, kMetadata, 95);
  const Image back = read_image(path);
  ASSERT_EQ(back.width, image.width);
  ASSERT_EQ(back.height, image.height);
  EXPECT_LT(mean_absolute_difference(back, image), max_mean_difference);
  EXPECT_EQ(read_image_metadata(path), kMetadata);
}

TEST(ImageFile, JpegRoundTripIsCloseWithMetadata) {
  ScratchDir dir;
  expect_lossy_round_trip(dir.file("a.jpg"), test_pattern(48, 32), 3.0);
}

TEST(ImageFile, JpegQualityChangesSize) {
  ScratchDir dir;
  const Image image = random_image(32, 32, 2);
  write_image(dir.file("low.jpeg"), image, {}, 20);
  write_image(dir.file("high.jpeg"), image, {}, 95);
  EXPECT_LT(read_bytes(dir.file("low.jpeg")).size(), read_bytes(dir.file("high.jpeg")).size());
}

TEST(ImageFile, WebpRoundTripIsCloseWithMetadata) {
  ScratchDir dir;
  const Image image = test_pattern(40, 30);
  expect_lossy_round_trip(dir.file("a.webp"), image, 4.0);
  write_image(dir.file("plain.webp"), image);
  EXPECT_TRUE(read_image_metadata(dir.file("plain.webp")).empty());
}

TEST(ImageFile, FormatComesFromMagicBytesNotExtension) {
  ScratchDir dir;
  const Image image = random_image(5, 3, 3);
  write_image(dir.file("a.png"), image);
  std::filesystem::rename(dir.file("a.png"), dir.file("looks_like.jpg"));
  EXPECT_EQ(read_image(dir.file("looks_like.jpg")).rgb, image.rgb);
}

TEST(ImageFile, ReadsGrayAndGrayAlphaPng) {
  ScratchDir dir;
  const std::vector<uint8_t> gray = {0, 10, 20, 30, 40, 250};
  write_bytes(dir.file("g.png"), libpng_encode(3, 2, PNG_FORMAT_GRAY, gray.data()));
  Image image = read_image(dir.file("g.png"));
  ASSERT_EQ(image.width, 3);
  ASSERT_EQ(image.height, 2);
  for (size_t i = 0; i < gray.size(); ++i)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(image.rgb[i * 3 + c], gray[i]);

  const std::vector<uint8_t> gray_alpha = {7, 0, 99, 128, 200, 255, 1, 17};  // alpha is dropped, not composited
  write_bytes(dir.file("ga.png"), libpng_encode(2, 2, PNG_FORMAT_GA, gray_alpha.data()));
  image = read_image(dir.file("ga.png"));
  ASSERT_EQ(image.rgb.size(), 12u);
  for (size_t i = 0; i < 4; ++i)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(image.rgb[i * 3 + c], gray_alpha[i * 2]);
}

TEST(ImageFile, ReadsRgbaPngDroppingAlpha) {
  ScratchDir dir;
  const std::vector<uint8_t> rgba = {10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255};
  write_bytes(dir.file("rgba.png"), libpng_encode(3, 1, PNG_FORMAT_RGBA, rgba.data()));
  const Image image = read_image(dir.file("rgba.png"));
  EXPECT_EQ(image.rgb, (std::vector<uint8_t>{10, 20, 30, 40, 50, 60, 70, 80, 90}));
}

TEST(ImageFile, Reads16BitPngKeepingTheHighByte) {
  ScratchDir dir;
  const std::vector<uint16_t> gray = {0x0000, 0x12ff, 0xff00, 0x8080};
  write_bytes(dir.file("g16.png"), libpng_encode(2, 2, PNG_FORMAT_LINEAR_Y, gray.data()));
  Image image = read_image(dir.file("g16.png"));
  ASSERT_EQ(image.rgb.size(), 12u);
  for (size_t i = 0; i < 4; ++i)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(image.rgb[i * 3 + c], gray[i] >> 8);

  const std::vector<uint16_t> rgb = {0x0100, 0x0200, 0x0300, 0xfe00, 0xfd00, 0xfc00};
  write_bytes(dir.file("rgb16.png"), libpng_encode(2, 1, PNG_FORMAT_LINEAR_RGB, rgb.data()));
  image = read_image(dir.file("rgb16.png"));
  EXPECT_EQ(image.rgb, (std::vector<uint8_t>{1, 2, 3, 254, 253, 252}));
}

TEST(ImageFile, ReadsPalettePng) {
  ScratchDir dir;
  const std::vector<uint8_t> colormap = {255, 0, 0, 0, 255, 0, 0, 0, 255};
  const std::vector<uint8_t> indices = {0, 1, 2, 2, 1, 0};
  write_bytes(dir.file("p.png"), libpng_encode(3, 2, PNG_FORMAT_RGB_COLORMAP, indices.data(), colormap.data(), 3));
  const Image image = read_image(dir.file("p.png"));
  ASSERT_EQ(image.rgb.size(), 18u);
  for (size_t i = 0; i < indices.size(); ++i)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(image.rgb[i * 3 + c], colormap[indices[i] * 3 + c]) << i;
}

// A grayscale JPEG (libjpeg's default error handler is fine here: the input is valid).
std::vector<uint8_t> gray_jpeg(int width, int height, const std::vector<uint8_t>& gray) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr errors;
  cinfo.err = jpeg_std_error(&errors);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = JDIMENSION(width);
  cinfo.image_height = JDIMENSION(height);
  cinfo.input_components = 1;
  cinfo.in_color_space = JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 100, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(gray.data() + size_t(cinfo.next_scanline) * width);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<uint8_t> bytes(buffer, buffer + size);
  std::free(buffer);
  return bytes;
}

TEST(ImageFile, ReadsGrayscaleJpegAsRgb) {
  ScratchDir dir;
  std::vector<uint8_t> gray(16 * 8);
  for (size_t i = 0; i < gray.size(); ++i) gray[i] = uint8_t(i * 2);
  write_bytes(dir.file("g.jpg"), gray_jpeg(16, 8, gray));
  const Image image = read_image(dir.file("g.jpg"));
  ASSERT_EQ(image.width, 16);
  ASSERT_EQ(image.height, 8);
  double error = 0;
  for (size_t i = 0; i < gray.size(); ++i) {
    EXPECT_EQ(image.rgb[i * 3], image.rgb[i * 3 + 1]);
    EXPECT_EQ(image.rgb[i * 3], image.rgb[i * 3 + 2]);
    error += std::abs(int(image.rgb[i * 3]) - int(gray[i]));
  }
  EXPECT_LT(error / double(gray.size()), 2.0);
}

void expect_error_mentioning(const std::function<void()>& action, const std::string& fragment) {
  try {
    action();
    ADD_FAILURE() << "expected k5::Error mentioning '" << fragment << "'";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
    EXPECT_EQ(std::string(error.what()).find('\n'), std::string::npos) << error.what();
  }
}

TEST(ImageFile, MissingEmptyAndForeignFilesAreErrors) {
  ScratchDir dir;
  const std::string missing = dir.file("missing.png");
  expect_error_mentioning([&] { read_image(missing); }, missing);
  write_bytes(dir.file("empty.png"), {});
  expect_error_mentioning([&] { read_image(dir.file("empty.png")); }, "empty");
  test::write_text(dir.file("text.png"), "hello, not an image");
  expect_error_mentioning([&] { read_image(dir.file("text.png")); }, "not a PNG, JPEG or WebP");
  expect_error_mentioning([&] { read_image(dir.path()); }, "directory");
}

TEST(ImageFile, UnknownExtensionListsTheChoices) {
  ScratchDir dir;
  expect_error_mentioning([&] { write_image(dir.file("a.bmp"), test_pattern(2, 2)); }, ".png, .jpg, .jpeg or .webp");
  EXPECT_FALSE(std::filesystem::exists(dir.file("a.bmp")));
}

TEST(ImageFile, FailedWritesLeaveNoFile) {
  ScratchDir dir;
  const Image image = test_pattern(4, 4);
  const std::string in_missing_dir = dir.file("no_such_dir/out.png");
  EXPECT_THROW(write_image(in_missing_dir, image), Error);
  EXPECT_FALSE(std::filesystem::exists(dir.file("no_such_dir")));

  // A bad metadata key fails before anything is written; an existing file stays as it was.
  write_image(dir.file("keep.png"), image);
  const auto before = read_bytes(dir.file("keep.png"));
  EXPECT_THROW(write_image(dir.file("keep.png"), test_pattern(8, 8), {{"", "x"}}), Error);
  EXPECT_THROW(write_image(dir.file("keep.webp"), image, {{"not an xml name", "x"}}), Error);
  EXPECT_EQ(read_bytes(dir.file("keep.png")), before);
  EXPECT_THROW(write_image(dir.file("bad.png"), Image(3, 0)), Error);
  EXPECT_THROW(write_image(dir.file("bad.jpg"), image, {}, 0), Error);

  if (::geteuid() != 0) {  // root writes anywhere
    const std::string locked = dir.file("locked");
    std::filesystem::create_directory(locked);
    ::chmod(locked.c_str(), 0500);
    for (const char* name : {"a.png", "a.jpg", "a.webp"})
      EXPECT_THROW(write_image(locked + "/" + name, image, kMetadata), Error) << name;
    ::chmod(locked.c_str(), 0700);
    EXPECT_TRUE(std::filesystem::is_empty(locked));
  }
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    names.push_back(entry.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"keep.png"});
}

// Every file read in the fuzz tests either decodes or throws k5::Error; anything else fails the test and
// crashes are caught by the sanitizer builds.
bool decodes_or_throws_k5_error(const std::string& path) {
  try {
    read_image(path);
    read_image_metadata(path);
    return true;
  } catch (const Error&) {
    return false;
  }
}

std::vector<uint8_t> small_file(const ScratchDir& dir, const std::string& extension) {
  const std::string path = dir.file("small" + extension);
  write_image(path, test_pattern(8, 6), {{"seed", "7"}}, 80);
  return read_bytes(path);
}

class ImageFileFuzz : public ::testing::TestWithParam<std::string> {};

TEST_P(ImageFileFuzz, EveryTruncationIsAnError) {
  ScratchDir dir;
  const std::vector<uint8_t> bytes = small_file(dir, GetParam());
  const std::string path = dir.file("cut");
  for (size_t length = 0; length < bytes.size(); ++length) {
    write_bytes(path, std::vector<uint8_t>(bytes.begin(), bytes.begin() + std::ptrdiff_t(length)));
    EXPECT_THROW(read_image(path), Error) << GetParam() << " cut to " << length << " of " << bytes.size();
  }
  write_bytes(path, bytes);
  EXPECT_NO_THROW(read_image(path));
}

TEST_P(ImageFileFuzz, RandomMutationsNeverCrash) {
  ScratchDir dir;
  const std::vector<uint8_t> bytes = small_file(dir, GetParam());
  const std::string path = dir.file("mutated");
  std::mt19937 rng(1234);
  int decoded = 0;
  for (int trial = 0; trial < 400; ++trial) {
    std::vector<uint8_t> mutated = bytes;
    const int changes = 1 + int(rng() % 4);
    for (int i = 0; i < changes; ++i) {
      // Half the mutations hit the first 64 bytes, where the headers are.
      const size_t limit = (rng() & 1) ? std::min<size_t>(64, mutated.size()) : mutated.size();
      mutated[rng() % limit] = uint8_t(rng());
    }
    write_bytes(path, mutated);
    decoded += decodes_or_throws_k5_error(path);
  }
  RecordProperty("decoded", decoded);
}

INSTANTIATE_TEST_SUITE_P(ImageFile, ImageFileFuzz, ::testing::Values(".png", ".jpg", ".webp"),
                         [](const auto& info) { return info.param.substr(1); });

}  // namespace
}  // namespace k5
