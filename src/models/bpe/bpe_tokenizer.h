// The byte-level BPE tokenizer of Qwen2 / Qwen2.5(-VL), loaded from a Hugging Face tokenizer.json or from
// vocab.json + merges.txt (+ tokenizer_config.json's added tokens). Encoding: added tokens are cut out of
// the raw text first (longest match at the leftmost position), every other stretch is NFC-normalised,
// split by the tokenizer's regex, and each piece is merged by BPE over its UTF-8 bytes. Nothing is added
// around the ids (Qwen2TokenizerFast adds no BOS/EOS).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/bpe/bpe_model.h"

namespace k5::bpe {

// The Qwen2 split pattern, used when a vocab.json + merges.txt folder carries no pre-tokenizer.
extern const char* const kQwen2SplitPattern;

}  // namespace k5::bpe

namespace k5 {

class BpeTokenizer {
 public:
  // `dir_or_file`: a tokenizer.json, or a folder holding tokenizer.json or vocab.json + merges.txt.
  static BpeTokenizer load(const std::string& dir_or_file);

  std::vector<int32_t> encode(std::string_view text) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;
  std::optional<int32_t> token_id(std::string_view token) const;  // vocabulary or added token
  size_t vocab_size() const;                                      // highest id + 1
  const std::string& source() const;                              // the file(s) it was loaded from

  struct Impl;

 private:
  explicit BpeTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace k5
