#include "models/bpe/unicode_text.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/ustring.h>
#include <unicode/utf8.h>

#include "core/error.h"

namespace k5::bpe {

namespace {

bool is_ascii(std::string_view text) {
  for (unsigned char c : text)
    if (c >= 0x80) return false;
  return true;
}

}  // namespace

void check_utf8(std::string_view text, std::string_view what) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const int32_t length = int32_t(text.size());
  K5_CHECK(text.size() < size_t(INT32_MAX), what, ": text of ", text.size(), " bytes is too long");
  int32_t i = 0;
  while (i < length) {
    const int32_t start = i;
    UChar32 c;
    U8_NEXT(s, i, length, c);
    K5_CHECK(c >= 0, what, ": invalid UTF-8 at byte ", start);
  }
}

std::string nfc(std::string_view text) {
  if (is_ascii(text)) return std::string(text);
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* normalizer = icu::Normalizer2::getNFCInstance(status);
  K5_CHECK(U_SUCCESS(status), "ICU: cannot load the NFC normaliser: ", u_errorName(status));
  const icu::UnicodeString source = icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), int32_t(text.size())));
  if (normalizer->isNormalized(source, status) && U_SUCCESS(status)) return std::string(text);
  status = U_ZERO_ERROR;
  const icu::UnicodeString composed = normalizer->normalize(source, status);
  K5_CHECK(U_SUCCESS(status), "ICU: NFC normalisation failed: ", u_errorName(status));
  std::string out;
  composed.toUTF8String(out);
  return out;
}

std::string lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const int32_t length = int32_t(text.size());
  int32_t i = 0;
  while (i < length) {
    if (s[i] < 0x80) {
      const char c = char(s[i++]);
      out.push_back(c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c);
      continue;
    }
    UChar32 c;
    U8_NEXT(s, i, length, c);
    K5_CHECK(c >= 0, "lowercase: invalid UTF-8");
    UChar one[2];
    int32_t one_length = 0;
    U16_APPEND_UNSAFE(one, one_length, c);
    UChar lowered[8];
    UErrorCode status = U_ZERO_ERROR;
    // One code point at a time with the root locale: no context-dependent rule can apply.
    const int32_t lowered_length = u_strToLower(lowered, 8, one, one_length, "", &status);
    K5_CHECK(U_SUCCESS(status), "ICU: lower-casing failed: ", u_errorName(status));
    icu::UnicodeString(lowered, lowered_length).toUTF8String(out);
  }
  return out;
}

std::string collapse_whitespace(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const int32_t length = int32_t(text.size());
  int32_t i = 0;
  bool in_space = false;
  while (i < length) {
    const int32_t start = i;
    UChar32 c;
    U8_NEXT(s, i, length, c);
    K5_CHECK(c >= 0, "collapse_whitespace: invalid UTF-8");
    if (u_isUWhiteSpace(c)) {
      if (!in_space) out.push_back(' ');
      in_space = true;
    } else {
      out.append(text.substr(size_t(start), size_t(i - start)));
      in_space = false;
    }
  }
  return out;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  const auto* s = reinterpret_cast<const uint8_t*>(bytes.data());
  const int32_t length = int32_t(bytes.size());
  int32_t i = 0;
  while (i < length) {
    const int32_t start = i;
    UChar32 c;
    // ICU's U8_NEXT consumes exactly one maximal subpart of an ill-formed sequence, as from_utf8_lossy.
    U8_NEXT(s, i, length, c);
    if (c < 0)
      out.append("\xEF\xBF\xBD");
    else
      out.append(bytes.substr(size_t(start), size_t(i - start)));
  }
  return out;
}

struct SplitRegex::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Compiled() {
    if (code) pcre2_code_free(code);
  }
};

namespace {

// `tokenizers` runs its regexes with Oniguruma, whose \s is the Unicode White_Space property. PCRE2's \s
// in UCP mode also matches U+180E (MONGOLIAN VOWEL SEPARATOR, no longer white space since Unicode 6.3), so
// \s and \S are spelled out as the property.
std::string oniguruma_compatible(const std::string& pattern) {
  std::string out;
  out.reserve(pattern.size() + 32);
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[i + 1];
      if (next == 's')
        out += "\\p{White_Space}";
      else if (next == 'S')
        out += "\\P{White_Space}";
      else
        out.append(pattern, i, 2);
      ++i;
    } else {
      out.push_back(pattern[i]);
    }
  }
  return out;
}

}  // namespace

SplitRegex::SplitRegex(const std::string& source_pattern) : compiled_(std::make_unique<Compiled>()) {
  const std::string pattern = oniguruma_compatible(source_pattern);
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                  PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error_code, &error_offset, nullptr);
  if (!compiled_->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    fail("tokenizer split regex: ", reinterpret_cast<const char*>(message), " at offset ", error_offset, " of ",
         pattern);
  }
  compiled_->jit = pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE) == 0;
}

SplitRegex::~SplitRegex() = default;
SplitRegex::SplitRegex(SplitRegex&&) noexcept = default;
SplitRegex& SplitRegex::operator=(SplitRegex&&) noexcept = default;

void SplitRegex::split(std::string_view text, std::vector<std::string_view>& pieces) const { run(text, pieces, true); }

void SplitRegex::matches(std::string_view text, std::vector<std::string_view>& pieces) const {
  run(text, pieces, false);
}

void SplitRegex::run(std::string_view text, std::vector<std::string_view>& pieces, bool keep_gaps) const {
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
      pcre2_match_data_create_from_pattern(compiled_->code, nullptr), &pcre2_match_data_free);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t offset = 0, gap_start = 0;
  while (offset < text.size()) {
    // The text was validated once by the caller: skip PCRE2's per-call UTF check (it would make the loop
    // quadratic).
    const int rc =
        compiled_->jit
            ? pcre2_jit_match(compiled_->code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK, match.get(), nullptr)
            : pcre2_match(compiled_->code, subject, text.size(), offset, PCRE2_NO_UTF_CHECK, match.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    K5_CHECK(rc >= 0, "tokenizer split regex: matching failed with PCRE2 error ", rc);
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
    const size_t begin = ovector[0], end = ovector[1];
    if (end == begin) {
      // An empty match makes no piece; step over one character.
      offset = begin + 1;
      while (offset < text.size() && (uint8_t(text[offset]) & 0xC0) == 0x80) ++offset;
      continue;
    }
    if (keep_gaps && begin > gap_start) pieces.push_back(text.substr(gap_start, begin - gap_start));
    pieces.push_back(text.substr(begin, end - begin));
    offset = gap_start = end;
  }
  if (keep_gaps && gap_start < text.size()) pieces.push_back(text.substr(gap_start));
}

}  // namespace k5::bpe
