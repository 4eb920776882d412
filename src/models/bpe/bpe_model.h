// Byte-level BPE: the vocabulary, the ranked merges and the merge loop shared by the Qwen and CLIP
// tokenizers. Words arrive as raw UTF-8 bytes; each byte starts as the symbol of its GPT-2 "byte to
// unicode" character, then the lowest-ranked adjacent pair is merged until no merge applies.
#pragma once

#include <cstdint>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace k5::bpe {

// GPT-2's reversible byte <-> printable character mapping (the ByteLevel pre-tokenizer and decoder).
const std::string& byte_to_unicode(uint8_t byte);  // UTF-8 of the character standing for `byte`
// Appends the bytes a vocabulary string stands for (characters outside the mapping pass through as UTF-8).
void append_unicode_bytes(std::string_view token, std::string& bytes);

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false;
};

class BpeModel {
 public:
  // `vocab`: token string -> id; `merges`: pairs of token strings in rank order. `end_of_word_suffix` is
  // appended to the last symbol of every word (CLIP's "</w>"; empty for Qwen).
  BpeModel(std::unordered_map<std::string, int32_t> vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, std::string end_of_word_suffix,
           const std::string& source);
  BpeModel(BpeModel&&) noexcept;

  // Ids of one pre-tokenized word (raw bytes). Results are cached per word.
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const;

  std::optional<int32_t> token_id(std::string_view token) const;
  const std::string* token(int32_t id) const;  // nullptr when out of range
  size_t vocab_size() const { return id_to_token_.size(); }

 private:
  std::vector<int32_t> merge_word(std::string_view word) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) -> rank and result
  std::string end_of_word_suffix_;
  int32_t byte_ids_[256];
  int32_t final_byte_ids_[256];  // byte_ids_ with the end-of-word suffix

  static constexpr size_t kCacheLimit = 100000;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

// Reads the vocabulary and merges of the `model` object of a tokenizer.json (merges as "a b" strings or as
// [a, b] pairs).
std::unordered_map<std::string, int32_t> parse_vocab(const nlohmann::json& vocab, const std::string& source);
std::vector<std::pair<std::string, std::string>> parse_merges(const nlohmann::json& merges, const std::string& source);
// merges.txt: one "a b" pair per line, an optional "#version" header.
std::vector<std::pair<std::string, std::string>> read_merges_txt(const std::string& path);
std::unordered_map<std::string, int32_t> read_vocab_json(const std::string& path);

}  // namespace k5::bpe
