// The CLIP ViT-L/14 text tokenizer as transformers 5's CLIPTokenizer (backed by `tokenizers`) runs it:
// NFC, white-space runs -> one space, per-character lower case, the CLIP word regex (text between matches is
// dropped), byte-level BPE with "</w>" on each word's last symbol; <|startoftext|> / <|endoftext|> in the
// text are kept as their ids. The official Kandinsky embedder calls it with max_length 77, truncation and
// padding to max_length (encode_padded).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace k5 {

class ClipTokenizer {
 public:
  // `dir_or_file`: a folder with vocab.json + merges.txt (or tokenizer.json), or a tokenizer.json.
  // tokenizer_config.json's pad_token is honoured when present (default <|endoftext|>).
  static ClipTokenizer load(const std::string& dir_or_file);

  struct Encoding {
    std::vector<int32_t> ids;   // [max_length]: BOS, text ids (truncated), EOS, then pad ids
    std::vector<uint8_t> mask;  // [max_length]: 1 for BOS/text/EOS, 0 for padding
  };

  std::vector<int32_t> encode(std::string_view text) const;  // without BOS/EOS, not truncated
  Encoding encode_padded(std::string_view text, int max_length = 77) const;
  // As CLIPTokenizer.decode: byte-level decode, "</w>" -> " ", surrounding white space stripped.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;
  std::optional<int32_t> token_id(std::string_view token) const;

  int32_t bos_id() const;
  int32_t eos_id() const;
  int32_t pad_id() const;

  struct Impl;

 private:
  explicit ClipTokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace k5
