// Still images on disk: PNG, JPEG and WebP in, PNG, JPEG and WebP out, always as 8-bit RGB.
//
// Reading decides the format by the file's magic bytes (never the extension) and converts every variant
// the way PIL's Image.convert('RGB') does for the official pipelines' inputs: palette and gray expand to
// RGB, alpha is dropped (not composited), 16-bit samples keep their high byte (as PIL does for 16-bit RGB;
// for 16-bit gray PIL clips values above 255 to white instead, a quirk not reproduced). CMYK/YCCK JPEGs
// and animated WebPs are refused. Every failure (missing, truncated, corrupt, unsupported) is a k5::Error
// whose one line names the file and the problem. Sides above kMaxImageSide are refused.
//
// Writing picks the format from the extension (.png, .jpg/.jpeg, .webp) and writes atomically (temporary
// name beside the target, then rename), so a failed write leaves nothing behind. Metadata (generation
// parameters) is stored as:
//   PNG   one iTXt chunk per entry (UTF-8, uncompressed); keys 1-79 bytes, as PNG requires.
//   JPEG  one COM marker per entry, "key=value" with '\' and newlines escaped as \\ and \n.
//   WebP  an XMP chunk (via libwebpmux) holding each entry as <k5:key>value</k5:key> in the namespace
//         below; keys must be XML names ([A-Za-z_][A-Za-z0-9_.-]*).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace k5 {

// RGB8, row-major: rgb[(y * width + x) * 3 + c].
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;

  Image() = default;
  Image(int width, int height) : width(width), height(height), rgb(size_t(width) * size_t(height) * 3) {}
  uint8_t* pixel(int x, int y) { return rgb.data() + (size_t(y) * size_t(width) + size_t(x)) * 3; }
  const uint8_t* pixel(int x, int y) const { return rgb.data() + (size_t(y) * size_t(width) + size_t(x)) * 3; }
};

using ImageMetadata = std::vector<std::pair<std::string, std::string>>;

// The XML namespace of the WebP metadata entries.
inline constexpr const char* kXmpNamespace = "https://github.com/k5/xmp/1.0/";

// Images larger than this (either side, in pixels) are refused before any allocation.
inline constexpr int kMaxImageSide = 1 << 15;

Image read_image(const std::string& path);

// The entries write_image stored (PNG tEXt/zTXt/iTXt, JPEG COM "key=value", WebP k5 XMP), in file order.
ImageMetadata read_image_metadata(const std::string& path);

// `quality` (1-100) applies to JPEG and WebP (lossy); PNG is always lossless.
void write_image(const std::string& path, const Image& image, const ImageMetadata& metadata = {}, int quality = 90);

}  // namespace k5
