// Unicode helpers of the BPE tokenizers: UTF-8 validation, NFC (ICU), per-character lower-casing and a
// PCRE2 splitter that reproduces the Hugging Face `tokenizers` Split pre-tokenizer.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace k5::bpe {

// Throws k5::Error naming `what` when `text` is not valid UTF-8 (the tokenizers only accept text).
void check_utf8(std::string_view text, std::string_view what);

// Canonical composition (Unicode NFC), as the `NFC` normalizer of tokenizer.json.
std::string nfc(std::string_view text);

// Full lower-case mapping of each code point on its own (no context such as the Greek final sigma): this is
// what the `Lowercase` normalizer of `tokenizers` does (Rust char::to_lowercase).
std::string lowercase(std::string_view text);

// Replaces every run of Unicode white space by one ASCII space.
std::string collapse_whitespace(std::string_view text);

// Converts bytes that are not valid UTF-8 the way Rust's String::from_utf8_lossy does (U+FFFD per maximal
// invalid subpart): the `tokenizers` decoders produce text this way.
std::string utf8_lossy(std::string_view bytes);

// A compiled regular expression (PCRE2, UTF + Unicode properties, JIT when available) that cuts a text
// into the pieces of the `Split` pre-tokenizer with behaviour `Isolated`: every match is a piece, and so is
// every stretch between matches.
class SplitRegex {
 public:
  explicit SplitRegex(const std::string& pattern);
  ~SplitRegex();
  SplitRegex(SplitRegex&&) noexcept;
  SplitRegex& operator=(SplitRegex&&) noexcept;

  // Appends the pieces of `text` (views into it) to `pieces`. `text` must be valid UTF-8.
  void split(std::string_view text, std::vector<std::string_view>& pieces) const;
  // Appends only the matches (behaviour `Removed` with `invert`: the text between matches is dropped).
  void matches(std::string_view text, std::vector<std::string_view>& pieces) const;

 private:
  void run(std::string_view text, std::vector<std::string_view>& pieces, bool keep_gaps) const;
  struct Compiled;
  std::unique_ptr<Compiled> compiled_;
};

}  // namespace k5::bpe
