#include "models/bpe/bpe_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/bpe/unicode_text.h"

namespace k5::bpe {

const char* const kQwen2SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

}  // namespace k5::bpe

namespace k5 {

using bpe::AddedToken;

struct BpeTokenizer::Impl {
  std::string source;
  bpe::BpeModel model;
  bpe::SplitRegex split;
  bool normalize_nfc = true;
  std::vector<AddedToken> added;  // longest first
  std::unordered_map<int32_t, size_t> added_by_id;
  bool added_first_byte[256] = {};
};

namespace {

nlohmann::json read_json(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  K5_CHECK(file.good(), "cannot open ", path);
  try {
    return nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& error) {
    fail(path, ": invalid JSON: ", error.what());
  }
}

// The split regex of a tokenizer.json pre_tokenizer (a Split, possibly inside a Sequence), if any.
std::optional<std::string> find_split_pattern(const nlohmann::json& pre_tokenizer, const std::string& source) {
  if (!pre_tokenizer.is_object()) return std::nullopt;
  const std::string type = pre_tokenizer.value("type", "");
  if (type == "Sequence") {
    for (const auto& inner : pre_tokenizer.value("pretokenizers", nlohmann::json::array()))
      if (auto pattern = find_split_pattern(inner, source)) return pattern;
    return std::nullopt;
  }
  if (type == "Split") {
    const auto& pattern = pre_tokenizer.at("pattern");
    K5_CHECK(pattern.contains("Regex"), source, ": only Regex split patterns are supported");
    K5_CHECK(pre_tokenizer.value("behavior", "") == "Isolated" && !pre_tokenizer.value("invert", false), source,
             ": only the Isolated, non-inverted Split pre-tokenizer is supported");
    return pattern["Regex"].get<std::string>();
  }
  return std::nullopt;
}

// A ByteLevel step that splits again with the GPT-2 regex (Qwen's has use_regex false).
bool uses_byte_level_regex(const nlohmann::json& pre_tokenizer) {
  if (!pre_tokenizer.is_object()) return false;
  const std::string type = pre_tokenizer.value("type", "");
  if (type == "Sequence") {
    for (const auto& inner : pre_tokenizer.value("pretokenizers", nlohmann::json::array()))
      if (uses_byte_level_regex(inner)) return true;
    return false;
  }
  return type == "ByteLevel" && pre_tokenizer.value("use_regex", true);
}

std::vector<AddedToken> parse_added_tokens(const nlohmann::json& list, const std::string& source) {
  std::vector<AddedToken> out;
  for (const auto& entry : list) {
    K5_CHECK(entry.contains("id") && entry.contains("content"), source, ": an added token lacks id or content");
    // Qwen's added tokens match exactly; the white-space absorbing variants are not implemented.
    K5_CHECK(!entry.value("lstrip", false) && !entry.value("rstrip", false) && !entry.value("single_word", false),
             source, ": added token ", entry["content"].dump(), " uses lstrip/rstrip/single_word, not supported");
    out.push_back({entry["content"].get<std::string>(), entry["id"].get<int32_t>(), entry.value("special", false)});
  }
  return out;
}

// tokenizer_config.json's "added_tokens_decoder": {"151643": {"content": ..., "special": true}, ...}.
std::vector<AddedToken> read_config_added_tokens(const std::string& path) {
  std::vector<AddedToken> out;
  if (!std::filesystem::exists(path)) return out;
  const nlohmann::json config = read_json(path);
  if (!config.contains("added_tokens_decoder")) return out;
  for (const auto& [id, entry] : config["added_tokens_decoder"].items())
    out.push_back({entry.at("content").get<std::string>(), int32_t(std::stol(id)), entry.value("special", false)});
  return out;
}

}  // namespace

BpeTokenizer BpeTokenizer::load(const std::string& dir_or_file) {
  namespace fs = std::filesystem;
  std::string json_path, vocab_path, merges_path, config_path;
  if (fs::is_directory(dir_or_file)) {
    const fs::path dir(dir_or_file);
    if (fs::exists(dir / "tokenizer.json")) {
      json_path = (dir / "tokenizer.json").string();
    } else if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) {
      vocab_path = (dir / "vocab.json").string();
      merges_path = (dir / "merges.txt").string();
      config_path = (dir / "tokenizer_config.json").string();
    } else {
      fail("no tokenizer in ", dir_or_file, ": looked for tokenizer.json or vocab.json + merges.txt");
    }
  } else {
    K5_CHECK(fs::exists(dir_or_file), "tokenizer not found: ", dir_or_file,
             " (expected a tokenizer.json or a folder with tokenizer.json or vocab.json + merges.txt)");
    json_path = dir_or_file;
  }

  std::string pattern = bpe::kQwen2SplitPattern;
  bool normalize_nfc = true;
  std::vector<AddedToken> added;
  std::string source;
  std::optional<bpe::BpeModel> model;
  if (!json_path.empty()) {
    source = json_path;
    const nlohmann::json json = read_json(json_path);
    K5_CHECK(json.contains("model") && json["model"].is_object(), json_path, ": no \"model\" object");
    const auto& model_json = json["model"];
    K5_CHECK(model_json.value("type", "BPE") == "BPE", json_path, ": model type ", model_json.value("type", ""),
             " is not BPE");
    K5_CHECK(model_json.contains("vocab") && model_json.contains("merges"), json_path, ": model lacks vocab or merges");
    model.emplace(bpe::parse_vocab(model_json["vocab"], json_path), bpe::parse_merges(model_json["merges"], json_path),
                  std::string(), json_path);
    if (json.contains("pre_tokenizer") && !json["pre_tokenizer"].is_null()) {
      auto found = find_split_pattern(json["pre_tokenizer"], json_path);
      K5_CHECK(found.has_value(), json_path, ": the pre_tokenizer has no regex Split (only Qwen2-style byte-level ",
               "BPE is supported)");
      K5_CHECK(!uses_byte_level_regex(json["pre_tokenizer"]), json_path,
               ": a ByteLevel pre-tokenizer with use_regex is not supported");
      pattern = *found;
    }
    const auto& normalizer = json.contains("normalizer") ? json["normalizer"] : nlohmann::json();
    normalize_nfc = normalizer.is_object() && normalizer.value("type", "") == "NFC";
    K5_CHECK(normalizer.is_null() || normalize_nfc, json_path, ": only the NFC normalizer is supported");
    if (json.contains("added_tokens")) added = parse_added_tokens(json["added_tokens"], json_path);
  } else {
    source = vocab_path + " + " + merges_path;
    model.emplace(bpe::read_vocab_json(vocab_path), bpe::read_merges_txt(merges_path), std::string(), source);
    added = read_config_added_tokens(config_path);
  }

  auto impl =
      std::make_shared<Impl>(Impl{source, std::move(*model), bpe::SplitRegex(pattern), normalize_nfc, {}, {}, {}});
  std::stable_sort(added.begin(), added.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  for (const auto& token : added) {
    K5_CHECK(!token.content.empty(), source, ": empty added token with id ", token.id);
    impl->added_by_id.emplace(token.id, impl->added.size());
    impl->added_first_byte[uint8_t(token.content[0])] = true;
    impl->added.push_back(token);
  }
  return BpeTokenizer(std::move(impl));
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  const Impl& impl = *impl_;
  bpe::check_utf8(text, "tokenizer input");
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<std::string_view> pieces;
  auto encode_plain = [&](std::string_view stretch) {
    if (stretch.empty()) return;
    const std::string normalized = impl.normalize_nfc ? bpe::nfc(stretch) : std::string(stretch);
    pieces.clear();
    impl.split.split(normalized, pieces);
    for (std::string_view piece : pieces) impl.model.encode_word(piece, ids);
  };
  size_t stretch_start = 0, i = 0;
  while (i < text.size()) {
    const AddedToken* match = nullptr;
    if (impl.added_first_byte[uint8_t(text[i])]) {
      for (const auto& token : impl.added)  // longest first
        if (text.compare(i, token.content.size(), token.content) == 0) {
          match = &token;
          break;
        }
    }
    if (!match) {
      ++i;
      continue;
    }
    encode_plain(text.substr(stretch_start, i - stretch_start));
    ids.push_back(match->id);
    i += match->content.size();
    stretch_start = i;
  }
  encode_plain(text.substr(stretch_start));
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const Impl& impl = *impl_;
  std::string bytes;
  for (const int32_t id : ids) {
    const auto added = impl.added_by_id.find(id);
    if (added != impl.added_by_id.end()) {
      const AddedToken& token = impl.added[added->second];
      if (!(skip_special_tokens && token.special)) bpe::append_unicode_bytes(token.content, bytes);
      continue;
    }
    // Ids past the vocabulary (a model's vocab_size is padded beyond the tokenizer's) decode to nothing, as
    // the tokenizers library drops ids it has no token for.
    K5_CHECK(id >= 0, "decode: negative token id ", id);
    const std::string* token = impl.model.token(id);
    if (token != nullptr) bpe::append_unicode_bytes(*token, bytes);
  }
  return bpe::utf8_lossy(bytes);
}

std::optional<int32_t> BpeTokenizer::token_id(std::string_view token) const {
  for (const auto& added : impl_->added)
    if (added.content == token) return added.id;
  return impl_->model.token_id(token);
}

size_t BpeTokenizer::vocab_size() const {
  size_t size = impl_->model.vocab_size();
  for (const auto& added : impl_->added) size = std::max(size, size_t(added.id) + 1);
  return size;
}

const std::string& BpeTokenizer::source() const { return impl_->source; }

}  // namespace k5
