#include "io/image_file.h"

// libjpeg's headers need FILE and size_t declared first.
#include <cstddef>
#include <cstdio>
// clang-format off
#include <jpeglib.h>
#include <jerror.h>
// clang-format on
#include <png.h>
#include <webp/decode.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csetjmp>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"

// The libpng and libjpeg calls report errors by longjmp. Each group of such calls lives in one "phase"
// function that calls setjmp first and holds only trivially destructible locals, so a longjmp back into it
// skips no C++ destructor; the phase returns false and its caller throws with the library's message.
// Buffers and library objects are owned by the (C++) caller.

namespace k5 {
namespace {

enum class ImageFormat { Png, Jpeg, WebP };

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) fail(path, ": is a directory, not an image file");
  std::FILE* file = std::fopen(path.c_str(), "rb");
  K5_CHECK(file != nullptr, path, ": cannot open: ", std::strerror(errno));
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  size_t count;
  while ((count = std::fread(chunk, 1, sizeof chunk, file)) > 0) bytes.insert(bytes.end(), chunk, chunk + count);
  const bool failed = std::ferror(file) != 0;
  const int saved = errno;
  std::fclose(file);
  K5_CHECK(!failed, path, ": cannot read: ", std::strerror(saved));
  return bytes;
}

ImageFormat detect_format(const std::string& path, const std::vector<uint8_t>& bytes) {
  static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
  K5_CHECK(!bytes.empty(), path, ": empty file, not an image");
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), png_signature, 8) == 0) return ImageFormat::Png;
  if (bytes.size() >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff) return ImageFormat::Jpeg;
  if (bytes.size() >= 12 && std::memcmp(bytes.data(), "RIFF", 4) == 0 && std::memcmp(bytes.data() + 8, "WEBP", 4) == 0)
    return ImageFormat::WebP;
  fail(path, ": not a PNG, JPEG or WebP file (unrecognised signature)");
}

void check_dimensions(const std::string& path, const char* format, uint64_t width, uint64_t height) {
  K5_CHECK(width > 0 && height > 0, path, ": ", format, " image has zero size (", width, "x", height, ")");
  K5_CHECK(width <= uint64_t(kMaxImageSide) && height <= uint64_t(kMaxImageSide), path, ": ", format, " image is ",
           width, "x", height, ", larger than the supported ", kMaxImageSide, " pixels per side");
}

// Backslash and newline escaping for the one-line "key=value" JPEG comments.
std::string escape_line(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string unescape_line(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      ++i;
      out += text[i] == 'n' ? '\n' : text[i];
    } else {
      out += text[i];
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------- PNG

struct PngSession {
  const uint8_t* input = nullptr;  // reading
  size_t input_size = 0;
  size_t position = 0;
  uint8_t* output = nullptr;  // writing: malloc'd, owned by the caller
  size_t output_size = 0;
  size_t output_capacity = 0;
  char message[256] = {};
};

void png_on_error(png_structp png, png_const_charp message) {
  auto* session = static_cast<PngSession*>(png_get_error_ptr(png));
  std::snprintf(session->message, sizeof session->message, "%s", message);
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}

void png_read_from_memory(png_structp png, png_bytep out, size_t length) {
  auto* session = static_cast<PngSession*>(png_get_io_ptr(png));
  if (length > session->input_size - session->position) png_error(png, "file is truncated");
  std::memcpy(out, session->input + session->position, length);
  session->position += length;
}

void png_write_to_memory(png_structp png, png_bytep data, size_t length) {
  auto* session = static_cast<PngSession*>(png_get_io_ptr(png));
  if (session->output_size + length > session->output_capacity) {
    const size_t capacity = std::max(session->output_capacity * 2, session->output_size + length + 4096);
    auto* grown = static_cast<uint8_t*>(std::realloc(session->output, capacity));
    if (grown == nullptr) png_error(png, "out of memory");
    session->output = grown;
    session->output_capacity = capacity;
  }
  std::memcpy(session->output + session->output_size, data, length);
  session->output_size += length;
}

void png_flush_memory(png_structp) {}

struct PngReadHandles {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~PngReadHandles() { png_destroy_read_struct(&png, info ? &info : nullptr, nullptr); }
};

struct PngLayout {
  uint32_t width = 0, height = 0;
  int channels = 0;  // after the transforms: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; 8 bits each
  size_t row_bytes = 0;
};

// Phase 1: signature and header; asks libpng for 8-bit samples with palettes and low bit depths expanded.
bool png_read_layout(png_structp png, png_infop info, PngLayout* layout) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_user_limits(png, kMaxImageSide, kMaxImageSide);
  png_set_chunk_malloc_max(png, 64u << 20);
  png_read_info(png, info);
  png_set_expand(png);
  png_set_strip_16(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  layout->width = png_get_image_width(png, info);
  layout->height = png_get_image_height(png, info);
  layout->channels = png_get_channels(png, info);
  layout->row_bytes = png_get_rowbytes(png, info);
  return true;
}

// Phase 2: pixels, then everything up to IEND (a file cut after the pixel data is still an error).
bool png_read_pixels(png_structp png, png_infop info, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  png_read_end(png, info);
  return true;
}

struct PngDecoded {
  Image image;
  ImageMetadata text;
};

PngDecoded decode_png(const std::string& path, const std::vector<uint8_t>& bytes) {
  PngSession session;
  session.input = bytes.data();
  session.input_size = bytes.size();
  PngReadHandles handles;
  handles.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &session, png_on_error, png_on_warning);
  K5_CHECK(handles.png != nullptr, path, ": cannot initialise libpng");
  handles.info = png_create_info_struct(handles.png);
  K5_CHECK(handles.info != nullptr, path, ": cannot initialise libpng");
  png_set_read_fn(handles.png, &session, png_read_from_memory);

  PngLayout layout;
  if (!png_read_layout(handles.png, handles.info, &layout)) fail(path, ": corrupt PNG: ", session.message);
  check_dimensions(path, "PNG", layout.width, layout.height);
  K5_CHECK(layout.channels >= 1 && layout.channels <= 4 && layout.row_bytes == size_t(layout.width) * layout.channels,
           path, ": unsupported PNG layout (", layout.channels, " channels, ", layout.row_bytes, " bytes per row)");
  std::vector<uint8_t> samples(layout.row_bytes * layout.height);
  std::vector<png_bytep> rows(layout.height);
  for (uint32_t y = 0; y < layout.height; ++y) rows[y] = samples.data() + size_t(y) * layout.row_bytes;
  if (!png_read_pixels(handles.png, handles.info, rows.data())) fail(path, ": corrupt PNG: ", session.message);

  // Gray replicates into R, G and B; alpha is dropped, as PIL's convert('RGB') does.
  PngDecoded decoded;
  decoded.image = Image(int(layout.width), int(layout.height));
  const size_t pixels = size_t(layout.width) * layout.height;
  const int channels = layout.channels;
  uint8_t* rgb = decoded.image.rgb.data();
  for (size_t i = 0; i < pixels; ++i) {
    const uint8_t* sample = samples.data() + i * channels;
    if (channels <= 2) {
      rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = sample[0];
    } else {
      rgb[3 * i] = sample[0];
      rgb[3 * i + 1] = sample[1];
      rgb[3 * i + 2] = sample[2];
    }
  }
  png_textp text = nullptr;
  const int text_count = png_get_text(handles.png, handles.info, &text, nullptr);
  for (int i = 0; i < text_count; ++i)
    decoded.text.emplace_back(text[i].key ? text[i].key : "", text[i].text ? text[i].text : "");
  return decoded;
}

struct PngWriteHandles {
  png_structp png = nullptr;
  png_infop info = nullptr;
  ~PngWriteHandles() { png_destroy_write_struct(&png, info ? &info : nullptr); }
};

bool png_encode(png_structp png, png_infop info, const Image* image, png_bytepp rows, png_textp text, int text_count) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_IHDR(png, info, uint32_t(image->width), uint32_t(image->height), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (text_count > 0) png_set_text(png, info, text, text_count);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, info);
  return true;
}

void check_png_keyword(const std::string& path, const std::string& key) {
  bool valid = !key.empty() && key.size() <= 79 && key.front() != ' ' && key.back() != ' ' &&
               key.find("  ") == std::string::npos;
  for (unsigned char c : key) valid = valid && c >= 32 && c <= 126;
  K5_CHECK(valid, path, ": PNG metadata key '", key,
           "' is not a valid keyword (1-79 printable ASCII characters, no leading, trailing or double spaces)");
}

std::vector<uint8_t> encode_png(const std::string& path, const Image& image, const ImageMetadata& metadata) {
  std::vector<png_text> text(metadata.size());
  for (size_t i = 0; i < metadata.size(); ++i) {
    check_png_keyword(path, metadata[i].first);
    K5_CHECK(metadata[i].second.find('\0') == std::string::npos, path, ": PNG metadata value of '", metadata[i].first,
             "' contains a NUL byte");
    text[i] = png_text{};
    text[i].compression = PNG_ITXT_COMPRESSION_NONE;
    text[i].key = const_cast<char*>(metadata[i].first.c_str());
    text[i].text = const_cast<char*>(metadata[i].second.c_str());
    text[i].itxt_length = metadata[i].second.size();
  }
  std::vector<png_bytep> rows(size_t(image.height));
  for (int y = 0; y < image.height; ++y) rows[size_t(y)] = const_cast<png_bytep>(image.pixel(0, y));

  PngSession session;
  PngWriteHandles handles;
  handles.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &session, png_on_error, png_on_warning);
  K5_CHECK(handles.png != nullptr, path, ": cannot initialise libpng");
  handles.info = png_create_info_struct(handles.png);
  K5_CHECK(handles.info != nullptr, path, ": cannot initialise libpng");
  png_set_write_fn(handles.png, &session, png_write_to_memory, png_flush_memory);
  const bool encoded = png_encode(handles.png, handles.info, &image, rows.data(), text.data(), int(text.size()));
  std::vector<uint8_t> bytes;
  if (encoded) bytes.assign(session.output, session.output + session.output_size);
  std::free(session.output);
  K5_CHECK(encoded, path, ": cannot encode PNG: ", session.message);
  return bytes;
}

// --------------------------------------------------------------------------------------------- JPEG

struct JpegErrors {
  jpeg_error_mgr manager;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void jpeg_on_error(j_common_ptr common) {
  auto* errors = reinterpret_cast<JpegErrors*>(common->err);
  (*common->err->format_message)(common, errors->message);
  std::longjmp(errors->jump, 1);
}

// libjpeg only warns when the data ends early (it pads with a fake EOI); a truncated file must be an error.
// Other warnings (stray bytes, corrupt entropy data) are tolerated as PIL tolerates them.
void jpeg_on_message(j_common_ptr common, int level) {
  if (level < 0 && common->err->msg_code == JWRN_JPEG_EOF) jpeg_on_error(common);
}

void init_jpeg_errors(JpegErrors* errors) {
  jpeg_std_error(&errors->manager);
  errors->manager.error_exit = jpeg_on_error;
  errors->manager.emit_message = jpeg_on_message;
  errors->message[0] = '\0';
}

struct JpegDecompressHandle {
  jpeg_decompress_struct cinfo;
  JpegDecompressHandle() { std::memset(&cinfo, 0, sizeof cinfo); }
  ~JpegDecompressHandle() { jpeg_destroy_decompress(&cinfo); }  // safe on a zeroed struct
};

bool jpeg_read_layout(jpeg_decompress_struct* cinfo, JpegErrors* errors, const uint8_t* data, size_t size,
                      bool keep_comments) {
  if (setjmp(errors->jump)) return false;
  jpeg_create_decompress(cinfo);
  cinfo->err = &errors->manager;
  jpeg_mem_src(cinfo, data, static_cast<unsigned long>(size));
  if (keep_comments) jpeg_save_markers(cinfo, JPEG_COM, 0xffff);
  jpeg_read_header(cinfo, TRUE);
  return true;
}

// The pixel buffer grows with the decoded rows (doubling), so a corrupt header that claims a huge image
// fails at the end of the data instead of first allocating gigabytes. Growing the vector here is safe: the
// longjmp never happens inside it, and a bad_alloc leaves through this function's trivial frame.
bool jpeg_read_pixels(jpeg_decompress_struct* cinfo, JpegErrors* errors, std::vector<uint8_t>* rgb) {
  if (setjmp(errors->jump)) return false;
  cinfo->out_color_space = JCS_RGB;
  cinfo->mem->max_memory_to_use = 1L << 30;  // progressive files buffer every coefficient
  jpeg_start_decompress(cinfo);
  if (cinfo->output_components != 3) ERREXIT(cinfo, JERR_CONVERSION_NOTIMPL);
  const size_t row_bytes = size_t(cinfo->output_width) * 3;
  const size_t total_bytes = row_bytes * cinfo->output_height;
  while (cinfo->output_scanline < cinfo->output_height) {
    const size_t needed = size_t(cinfo->output_scanline + 1) * row_bytes;
    if (rgb->size() < needed) rgb->resize(std::min(total_bytes, std::max(needed, rgb->size() * 2)));
    JSAMPROW row = rgb->data() + size_t(cinfo->output_scanline) * row_bytes;
    jpeg_read_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_decompress(cinfo);
  return true;
}

PngDecoded decode_jpeg(const std::string& path, const std::vector<uint8_t>& bytes, bool pixels) {
  JpegErrors errors;
  init_jpeg_errors(&errors);
  JpegDecompressHandle handle;
  handle.cinfo.err = &errors.manager;
  if (!jpeg_read_layout(&handle.cinfo, &errors, bytes.data(), bytes.size(), !pixels))
    fail(path, ": corrupt JPEG: ", errors.message);
  const J_COLOR_SPACE space = handle.cinfo.jpeg_color_space;
  K5_CHECK(space != JCS_CMYK && space != JCS_YCCK, path,
           ": CMYK JPEG is not supported (convert the image to RGB first)");
  K5_CHECK(handle.cinfo.num_components == 1 || handle.cinfo.num_components == 3, path, ": JPEG with ",
           handle.cinfo.num_components, " components is not supported");
  check_dimensions(path, "JPEG", handle.cinfo.image_width, handle.cinfo.image_height);
  PngDecoded decoded;
  if (!pixels) {
    for (jpeg_saved_marker_ptr marker = handle.cinfo.marker_list; marker; marker = marker->next) {
      if (marker->marker != JPEG_COM) continue;
      const std::string line(reinterpret_cast<const char*>(marker->data), marker->data_length);
      const size_t equals = line.find('=');
      if (equals == std::string::npos)
        decoded.text.emplace_back("comment", unescape_line(line));
      else
        decoded.text.emplace_back(unescape_line(line.substr(0, equals)), unescape_line(line.substr(equals + 1)));
    }
    return decoded;
  }
  decoded.image.width = int(handle.cinfo.image_width);
  decoded.image.height = int(handle.cinfo.image_height);
  if (!jpeg_read_pixels(&handle.cinfo, &errors, &decoded.image.rgb)) fail(path, ": corrupt JPEG: ", errors.message);
  K5_CHECK(
      int(handle.cinfo.output_width) == decoded.image.width && int(handle.cinfo.output_height) == decoded.image.height,
      path, ": JPEG decoder changed the image size");
  return decoded;
}

struct JpegCompressHandle {
  jpeg_compress_struct cinfo;
  unsigned char* output = nullptr;  // malloc'd by jpeg_mem_dest
  unsigned long output_size = 0;
  JpegCompressHandle() { std::memset(&cinfo, 0, sizeof cinfo); }
  ~JpegCompressHandle() {
    jpeg_destroy_compress(&cinfo);
    std::free(output);
  }
};

bool jpeg_encode(JpegCompressHandle* handle, JpegErrors* errors, const Image* image, int quality,
                 const std::string* comments, size_t comment_count) {
  jpeg_compress_struct* cinfo = &handle->cinfo;
  if (setjmp(errors->jump)) return false;
  jpeg_create_compress(cinfo);
  cinfo->err = &errors->manager;
  jpeg_mem_dest(cinfo, &handle->output, &handle->output_size);
  cinfo->image_width = JDIMENSION(image->width);
  cinfo->image_height = JDIMENSION(image->height);
  cinfo->input_components = 3;
  cinfo->in_color_space = JCS_RGB;
  jpeg_set_defaults(cinfo);
  jpeg_set_quality(cinfo, quality, TRUE);
  jpeg_start_compress(cinfo, TRUE);
  for (size_t i = 0; i < comment_count; ++i)
    jpeg_write_marker(cinfo, JPEG_COM, reinterpret_cast<const JOCTET*>(comments[i].data()),
                      unsigned(comments[i].size()));
  while (cinfo->next_scanline < cinfo->image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(image->pixel(0, int(cinfo->next_scanline)));
    jpeg_write_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_compress(cinfo);
  return true;
}

std::vector<uint8_t> encode_jpeg(const std::string& path, const Image& image, const ImageMetadata& metadata,
                                 int quality) {
  K5_CHECK(image.width <= 65500 && image.height <= 65500, path, ": JPEG cannot hold ", image.width, "x", image.height,
           " pixels (at most 65500 per side)");
  std::vector<std::string> comments;
  for (const auto& [key, value] : metadata) {
    K5_CHECK(!key.empty() && key.find('=') == std::string::npos, path, ": JPEG metadata key '", key,
             "' must be non-empty and free of '='");
    comments.push_back(escape_line(key) + "=" + escape_line(value));
    K5_CHECK(comments.back().size() <= 65533, path, ": JPEG metadata entry '", key,
             "' is longer than a COM marker holds (65533 bytes)");
  }
  JpegErrors errors;
  init_jpeg_errors(&errors);
  JpegCompressHandle handle;
  handle.cinfo.err = &errors.manager;
  if (!jpeg_encode(&handle, &errors, &image, quality, comments.data(), comments.size()))
    fail(path, ": cannot encode JPEG: ", errors.message);
  return std::vector<uint8_t>(handle.output, handle.output + handle.output_size);
}

// --------------------------------------------------------------------------------------------- WebP

const char* webp_status_text(VP8StatusCode status) {
  switch (status) {
    case VP8_STATUS_OK:
      return "ok";
    case VP8_STATUS_OUT_OF_MEMORY:
      return "out of memory";
    case VP8_STATUS_INVALID_PARAM:
      return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR:
      return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE:
      return "unsupported feature";
    case VP8_STATUS_SUSPENDED:
      return "suspended";
    case VP8_STATUS_USER_ABORT:
      return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA:
      return "file is truncated";
  }
  return "unknown error";
}

Image decode_webp(const std::string& path, const std::vector<uint8_t>& bytes) {
  WebPDecoderConfig config;
  K5_CHECK(WebPInitDecoderConfig(&config), path, ": libwebp version mismatch");
  VP8StatusCode status = WebPGetFeatures(bytes.data(), bytes.size(), &config.input);
  K5_CHECK(status == VP8_STATUS_OK, path, ": corrupt WebP: ", webp_status_text(status));
  K5_CHECK(!config.input.has_animation, path, ": animated WebP is not supported");
  check_dimensions(path, "WebP", uint64_t(config.input.width), uint64_t(config.input.height));
  // MODE_RGB drops alpha without compositing, like PIL's convert('RGB'). libwebp allocates the output
  // itself (untouched until rows decode), so a corrupt header claiming a huge image costs nothing.
  config.output.colorspace = MODE_RGB;
  status = WebPDecode(bytes.data(), bytes.size(), &config);
  Image image;
  if (status == VP8_STATUS_OK && config.output.u.RGBA.rgba != nullptr) {
    image.width = config.output.width;
    image.height = config.output.height;
    const size_t row_bytes = size_t(image.width) * 3;
    image.rgb.resize(row_bytes * size_t(image.height));
    for (int y = 0; y < image.height; ++y)
      std::memcpy(image.rgb.data() + row_bytes * size_t(y),
                  config.output.u.RGBA.rgba + size_t(config.output.u.RGBA.stride) * size_t(y), row_bytes);
  }
  WebPFreeDecBuffer(&config.output);
  K5_CHECK(status == VP8_STATUS_OK, path, ": corrupt WebP: ", webp_status_text(status));
  return image;
}

void check_xml_name(const std::string& path, const std::string& key) {
  bool valid = !key.empty() && (std::isalpha(static_cast<unsigned char>(key[0])) || key[0] == '_');
  for (unsigned char c : key) valid = valid && (std::isalnum(c) || c == '_' || c == '.' || c == '-');
  K5_CHECK(valid, path, ": WebP metadata key '", key, "' is not an XML name ([A-Za-z_][A-Za-z0-9_.-]*)");
}

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\r':
        out += "&#13;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string xml_unescape(const std::string& text) {
  static const std::pair<const char*, char> entities[] = {{"&amp;", '&'},  {"&lt;", '<'},    {"&gt;", '>'},
                                                          {"&quot;", '"'}, {"&apos;", '\''}, {"&#13;", '\r'}};
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    bool replaced = false;
    if (text[i] == '&') {
      for (const auto& [entity, character] : entities) {
        if (text.compare(i, std::strlen(entity), entity) == 0) {
          out += character;
          i += std::strlen(entity) - 1;
          replaced = true;
          break;
        }
      }
    }
    if (!replaced) out += text[i];
  }
  return out;
}

std::string xmp_packet(const ImageMetadata& metadata) {
  std::string xmp =
      "<?xpacket begin=\"\xEF\xBB\xBF\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n"
      "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n"
      " <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n"
      "  <rdf:Description rdf:about=\"\" xmlns:k5=\"";
  xmp += kXmpNamespace;
  xmp += "\">\n";
  for (const auto& [key, value] : metadata) xmp += "   <k5:" + key + ">" + xml_escape(value) + "</k5:" + key + ">\n";
  xmp += "  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end=\"w\"?>";
  return xmp;
}

// Reads back only what xmp_packet wrote: <k5:key>value</k5:key> elements.
ImageMetadata parse_xmp_packet(const std::string& xmp) {
  ImageMetadata metadata;
  size_t position = 0;
  while ((position = xmp.find("<k5:", position)) != std::string::npos) {
    const size_t name_end = xmp.find('>', position);
    if (name_end == std::string::npos) break;
    const std::string key = xmp.substr(position + 4, name_end - position - 4);
    const std::string closing = "</k5:" + key + ">";
    const size_t value_end = xmp.find(closing, name_end);
    if (key.empty() || key.back() == '/' || value_end == std::string::npos) {
      position = name_end;
      continue;
    }
    metadata.emplace_back(key, xml_unescape(xmp.substr(name_end + 1, value_end - name_end - 1)));
    position = value_end + closing.size();
  }
  return metadata;
}

ImageMetadata read_webp_metadata(const std::string& path, const std::vector<uint8_t>& bytes) {
  const WebPData data = {bytes.data(), bytes.size()};
  WebPMux* mux = WebPMuxCreate(&data, 0);
  K5_CHECK(mux != nullptr, path, ": corrupt WebP container");
  WebPData chunk = {nullptr, 0};
  const WebPMuxError found = WebPMuxGetChunk(mux, "XMP ", &chunk);
  ImageMetadata metadata;
  if (found == WEBP_MUX_OK)
    metadata = parse_xmp_packet(std::string(reinterpret_cast<const char*>(chunk.bytes), chunk.size));
  WebPMuxDelete(mux);
  return metadata;
}

std::vector<uint8_t> encode_webp(const std::string& path, const Image& image, const ImageMetadata& metadata,
                                 int quality) {
  K5_CHECK(image.width <= WEBP_MAX_DIMENSION && image.height <= WEBP_MAX_DIMENSION, path, ": WebP cannot hold ",
           image.width, "x", image.height, " pixels (at most ", WEBP_MAX_DIMENSION, " per side)");
  for (const auto& entry : metadata) check_xml_name(path, entry.first);
  uint8_t* encoded = nullptr;
  const size_t encoded_size =
      WebPEncodeRGB(image.rgb.data(), image.width, image.height, image.width * 3, float(quality), &encoded);
  if (encoded_size == 0) {
    WebPFree(encoded);
    fail(path, ": cannot encode WebP");
  }
  std::vector<uint8_t> bytes(encoded, encoded + encoded_size);
  WebPFree(encoded);
  if (metadata.empty()) return bytes;

  const std::string xmp = xmp_packet(metadata);
  WebPMux* mux = WebPMuxNew();
  K5_CHECK(mux != nullptr, path, ": cannot create a WebP container");
  const WebPData bitstream = {bytes.data(), bytes.size()};
  const WebPData xmp_data = {reinterpret_cast<const uint8_t*>(xmp.data()), xmp.size()};
  WebPData assembled = {nullptr, 0};
  WebPMuxError status = WebPMuxSetImage(mux, &bitstream, 1);
  if (status == WEBP_MUX_OK) status = WebPMuxSetChunk(mux, "XMP ", &xmp_data, 1);
  if (status == WEBP_MUX_OK) status = WebPMuxAssemble(mux, &assembled);
  WebPMuxDelete(mux);
  if (status == WEBP_MUX_OK) bytes.assign(assembled.bytes, assembled.bytes + assembled.size);
  WebPDataClear(&assembled);
  K5_CHECK(status == WEBP_MUX_OK, path, ": cannot add metadata to the WebP file (libwebpmux error ", int(status), ")");
  return bytes;
}

// -------------------------------------------------------------------------------------------- files

ImageFormat format_from_extension(const std::string& path) {
  std::string extension = std::filesystem::path(path).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  if (extension == ".png") return ImageFormat::Png;
  if (extension == ".jpg" || extension == ".jpeg") return ImageFormat::Jpeg;
  if (extension == ".webp") return ImageFormat::WebP;
  fail(path, ": unknown image extension '", extension, "' (choose .png, .jpg, .jpeg or .webp)");
}

void write_file_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  write_atomically(path, [&](const std::string& temporary) {
    std::FILE* file = std::fopen(temporary.c_str(), "wb");
    K5_CHECK(file != nullptr, path, ": cannot create ", temporary, ": ", std::strerror(errno));
    bool written = std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size();
    int saved = errno;
    if (std::fclose(file) != 0 && written) {
      written = false;
      saved = errno;
    }
    K5_CHECK(written, path, ": cannot write: ", std::strerror(saved));
  });
}

}  // namespace

Image read_image(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  switch (detect_format(path, bytes)) {
    case ImageFormat::Png:
      return decode_png(path, bytes).image;
    case ImageFormat::Jpeg:
      return decode_jpeg(path, bytes, true).image;
    case ImageFormat::WebP:
      return decode_webp(path, bytes);
  }
  fail(path, ": unreachable");
}

ImageMetadata read_image_metadata(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  switch (detect_format(path, bytes)) {
    case ImageFormat::Png:
      return decode_png(path, bytes).text;
    case ImageFormat::Jpeg:
      return decode_jpeg(path, bytes, false).text;
    case ImageFormat::WebP:
      return read_webp_metadata(path, bytes);
  }
  fail(path, ": unreachable");
}

void write_image(const std::string& path, const Image& image, const ImageMetadata& metadata, int quality) {
  const ImageFormat format = format_from_extension(path);
  K5_CHECK(image.width > 0 && image.height > 0 && image.rgb.size() == size_t(image.width) * size_t(image.height) * 3,
           path, ": invalid image (", image.width, "x", image.height, " with ", image.rgb.size(),
           " bytes; expected width*height*3)");
  K5_CHECK(quality >= 1 && quality <= 100, path, ": quality ", quality, " is outside 1-100");
  std::vector<uint8_t> bytes;
  switch (format) {
    case ImageFormat::Png:
      bytes = encode_png(path, image, metadata);
      break;
    case ImageFormat::Jpeg:
      bytes = encode_jpeg(path, image, metadata, quality);
      break;
    case ImageFormat::WebP:
      bytes = encode_webp(path, image, metadata, quality);
      break;
  }
  write_file_bytes(path, bytes);
}

}  // namespace k5
