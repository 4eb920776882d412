#include "io/base64.h"

#include <algorithm>
#include <array>
#include <cstdint>

#include "core/error.h"

namespace k5 {
namespace {

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> decoding_table() {
  std::array<int8_t, 256> table{};
  for (auto& value : table) value = -1;
  for (size_t i = 0; i < kAlphabet.size(); ++i) table[static_cast<unsigned char>(kAlphabet[i])] = int8_t(i);
  return table;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

}  // namespace

std::string decode_base64(std::string_view text, const std::string& what) {
  static constexpr auto table = decoding_table();
  if (text.starts_with("data:")) {
    const size_t comma = text.find(',');
    K5_CHECK(comma != std::string_view::npos && text.substr(0, comma).ends_with(";base64"), what,
             ": a data URL must be data:<type>;base64,<data>");
    text.remove_prefix(comma + 1);
  }
  std::string bytes;
  bytes.reserve(text.size() / 4 * 3);
  uint32_t bits = 0;
  int count = 0;    // sextets in `bits`
  int padding = 0;  // '=' seen
  size_t position = 0;
  for (const char c : text) {
    ++position;
    if (is_space(c)) continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    const int8_t value = table[static_cast<unsigned char>(c)];
    K5_CHECK(value >= 0, what, ": not base64 (character ", position, ")");
    K5_CHECK(padding == 0, what, ": not base64 (data after '=' padding)");
    bits = (bits << 6) | uint32_t(value);
    if (++count == 4) {
      bytes.push_back(char(bits >> 16));
      bytes.push_back(char(bits >> 8));
      bytes.push_back(char(bits));
      bits = 0;
      count = 0;
    }
  }
  // A final group of 2 or 3 sextets holds 1 or 2 bytes; its unused low bits must be zero (canonical encoding).
  K5_CHECK(count != 1, what, ": not base64 (truncated)");
  K5_CHECK(padding == 0 || (count >= 2 && padding == 4 - count), what, ": not base64 (wrong '=' padding)");
  if (count == 2) {
    K5_CHECK((bits & 0xF) == 0, what, ": not base64 (non-zero trailing bits)");
    bytes.push_back(char(bits >> 4));
  } else if (count == 3) {
    K5_CHECK((bits & 0x3) == 0, what, ": not base64 (non-zero trailing bits)");
    bytes.push_back(char(bits >> 10));
    bytes.push_back(char(bits >> 2));
  }
  return bytes;
}

std::string encode_base64(std::string_view bytes) {
  std::string text;
  text.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t count = std::min<size_t>(3, bytes.size() - i);  // bytes in this group
    uint32_t bits = 0;
    for (size_t k = 0; k < 3; ++k) bits = (bits << 8) | (k < count ? uint8_t(bytes[i + k]) : 0u);
    for (size_t k = 0; k < 4; ++k) text.push_back(k <= count ? kAlphabet[(bits >> (18 - 6 * k)) & 63] : '=');
  }
  return text;
}

}  // namespace k5
