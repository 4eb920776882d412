#include "models/bpe/bpe_model.h"

#include <array>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>

#include "core/error.h"

namespace k5::bpe {

namespace {

std::string encode_utf8(uint32_t code_point) {
  std::string out;
  if (code_point < 0x80) {
    out.push_back(char(code_point));
  } else if (code_point < 0x800) {
    out.push_back(char(0xC0 | (code_point >> 6)));
    out.push_back(char(0x80 | (code_point & 0x3F)));
  } else {
    out.push_back(char(0xE0 | (code_point >> 12)));
    out.push_back(char(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(char(0x80 | (code_point & 0x3F)));
  }
  return out;
}

struct ByteTables {
  std::array<std::string, 256> to_unicode;
  std::unordered_map<uint32_t, uint8_t> from_code_point;
  ByteTables() {
    // Printable Latin-1 bytes stand for themselves; the others are shifted to 256 + n in byte order.
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t code_point = printable ? b : next++;
      to_unicode[b] = encode_utf8(code_point);
      from_code_point[code_point] = uint8_t(b);
    }
  }
};

const ByteTables& byte_tables() {
  static const ByteTables tables;
  return tables;
}

uint64_t pair_key(int32_t left, int32_t right) { return (uint64_t(uint32_t(left)) << 32) | uint32_t(right); }

}  // namespace

const std::string& byte_to_unicode(uint8_t byte) { return byte_tables().to_unicode[byte]; }

void append_unicode_bytes(std::string_view token, std::string& bytes) {
  const auto& from = byte_tables().from_code_point;
  size_t i = 0;
  while (i < token.size()) {
    const auto lead = uint8_t(token[i]);
    const size_t length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    uint32_t code_point = length == 1 ? lead : length == 2 ? lead & 0x1F : length == 3 ? lead & 0x0F : lead & 0x07;
    for (size_t k = 1; k < length && i + k < token.size(); ++k)
      code_point = (code_point << 6) | (uint8_t(token[i + k]) & 0x3F);
    const auto found = from.find(code_point);
    if (found != from.end())
      bytes.push_back(char(found->second));
    else
      bytes.append(token.substr(i, length));
    i += length;
  }
}

BpeModel::BpeModel(std::unordered_map<std::string, int32_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, std::string end_of_word_suffix,
                   const std::string& source)
    : vocab_(std::move(vocab)), end_of_word_suffix_(std::move(end_of_word_suffix)) {
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab_) {
    K5_CHECK(id >= 0, source, ": negative token id ", id, " for '", token, "'");
    max_id = std::max(max_id, id);
  }
  id_to_token_.resize(size_t(max_id + 1));
  for (const auto& [token, id] : vocab_) id_to_token_[size_t(id)] = token;
  for (int b = 0; b < 256; ++b) {
    const std::string& symbol = byte_to_unicode(uint8_t(b));
    const auto plain = vocab_.find(symbol);
    const auto final = vocab_.find(symbol + end_of_word_suffix_);
    K5_CHECK(plain != vocab_.end() && final != vocab_.end(), source, ": the vocabulary lacks the byte-level symbol '",
             symbol, end_of_word_suffix_.empty() ? "" : "' or '" + symbol + end_of_word_suffix_, "' of byte ", b);
    byte_ids_[b] = plain->second;
    final_byte_ids_[b] = final->second;
  }
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const auto left_id = vocab_.find(left), right_id = vocab_.find(right), merged = vocab_.find(left + right);
    K5_CHECK(left_id != vocab_.end() && right_id != vocab_.end() && merged != vocab_.end(), source, ": merge ", rank,
             " '", left, " ", right, "' uses a token missing from the vocabulary");
    // The first occurrence of a pair wins, as in `tokenizers`.
    merges_.emplace(pair_key(left_id->second, right_id->second), Merge{int32_t(rank), merged->second});
  }
}

BpeModel::BpeModel(BpeModel&& other) noexcept
    : vocab_(std::move(other.vocab_)),
      id_to_token_(std::move(other.id_to_token_)),
      merges_(std::move(other.merges_)),
      end_of_word_suffix_(std::move(other.end_of_word_suffix_)),
      cache_(std::move(other.cache_)) {
  std::copy(std::begin(other.byte_ids_), std::end(other.byte_ids_), byte_ids_);
  std::copy(std::begin(other.final_byte_ids_), std::end(other.final_byte_ids_), final_byte_ids_);
}

std::optional<int32_t> BpeModel::token_id(std::string_view token) const {
  const auto found = vocab_.find(std::string(token));
  if (found == vocab_.end()) return std::nullopt;
  return found->second;
}

const std::string* BpeModel::token(int32_t id) const {
  if (id < 0 || size_t(id) >= id_to_token_.size()) return nullptr;
  return &id_to_token_[size_t(id)];
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  const std::string key(word);
  {
    std::lock_guard lock(cache_mutex_);
    const auto found = cache_.find(key);
    if (found != cache_.end()) {
      ids.insert(ids.end(), found->second.begin(), found->second.end());
      return;
    }
  }
  std::vector<int32_t> merged = merge_word(word);
  ids.insert(ids.end(), merged.begin(), merged.end());
  std::lock_guard lock(cache_mutex_);
  if (cache_.size() >= kCacheLimit) cache_.clear();
  cache_.emplace(key, std::move(merged));
}

std::vector<int32_t> BpeModel::merge_word(std::string_view word) const {
  // Symbols form a doubly linked list over the word; a min-queue holds candidate merges ordered by rank
  // then position (leftmost first), and stale candidates are skipped when popped.
  struct Symbol {
    int32_t id;
    int32_t previous;
    int32_t next;
  };
  const int32_t n = int32_t(word.size());
  std::vector<Symbol> symbols(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) {
    const auto byte = uint8_t(word[size_t(i)]);
    symbols[size_t(i)] = {i == n - 1 ? final_byte_ids_[byte] : byte_ids_[byte], i - 1, i + 1 < n ? i + 1 : -1};
  }
  struct Candidate {
    int32_t rank, position, left_id, right_id, merged_id;
    bool operator>(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : position > other.position;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto push_pair = [&](int32_t left) {
    const int32_t right = symbols[size_t(left)].next;
    if (left < 0 || right < 0) return;
    const auto found = merges_.find(pair_key(symbols[size_t(left)].id, symbols[size_t(right)].id));
    if (found == merges_.end()) return;
    queue.push(
        {found->second.rank, left, symbols[size_t(left)].id, symbols[size_t(right)].id, found->second.merged_id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[size_t(top.position)];
    if (left.id != top.left_id || left.next < 0) continue;  // merged away or changed since queued
    if (left.id < 0) continue;
    Symbol& right = symbols[size_t(left.next)];
    if (right.id != top.right_id) continue;
    left.id = top.merged_id;
    right.id = -1;  // removed
    left.next = right.next;
    if (left.next >= 0) symbols[size_t(left.next)].previous = top.position;
    if (left.previous >= 0) push_pair(left.previous);
    push_pair(top.position);
  }
  std::vector<int32_t> ids;
  for (int32_t i = 0; i >= 0 && i < n; i = symbols[size_t(i)].next) ids.push_back(symbols[size_t(i)].id);
  return ids;
}

std::unordered_map<std::string, int32_t> parse_vocab(const nlohmann::json& vocab, const std::string& source) {
  K5_CHECK(vocab.is_object(), source, ": the vocabulary is not a JSON object of token -> id");
  std::unordered_map<std::string, int32_t> out;
  out.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    K5_CHECK(id.is_number_integer(), source, ": the id of token '", token, "' is not an integer");
    out.emplace(token, id.get<int32_t>());
  }
  return out;
}

namespace {

std::pair<std::string, std::string> split_merge_line(const std::string& line, const std::string& source, size_t index) {
  const size_t space = line.find(' ', 1);
  K5_CHECK(space != std::string::npos && space + 1 < line.size(), source, ": merge ", index, " '", line,
           "' is not two tokens separated by a space");
  return {line.substr(0, space), line.substr(space + 1)};
}

}  // namespace

std::vector<std::pair<std::string, std::string>> parse_merges(const nlohmann::json& merges, const std::string& source) {
  K5_CHECK(merges.is_array(), source, ": model.merges is not an array");
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto& merge = merges[i];
    if (merge.is_string()) {
      out.push_back(split_merge_line(merge.get<std::string>(), source, i));
    } else {
      K5_CHECK(merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string(), source,
               ": merge ", i, " is neither \"a b\" nor [a, b]");
      out.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> read_merges_txt(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  K5_CHECK(file.good(), "cannot open merges file ", path);
  std::vector<std::pair<std::string, std::string>> out;
  std::string line;
  size_t line_number = 0;
  while (std::getline(file, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_number == 1 && line.rfind("#version", 0) == 0)) continue;
    out.push_back(split_merge_line(line, path, line_number));
  }
  return out;
}

std::unordered_map<std::string, int32_t> read_vocab_json(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  K5_CHECK(file.good(), "cannot open vocabulary file ", path);
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& error) {
    fail(path, ": invalid JSON: ", error.what());
  }
  return parse_vocab(vocab, path);
}

}  // namespace k5::bpe
