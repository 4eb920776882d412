#include "models/bpe/clip_tokenizer.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/bpe/bpe_model.h"
#include "models/bpe/unicode_text.h"

namespace k5 {

namespace {

// The pattern of CLIPTokenizer's Split pre-tokenizer (matches are the words; the rest is dropped).
const char* const kClipWordPattern =
    R"(<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+)";
const char* const kStartOfText = "<|startoftext|>";
const char* const kEndOfText = "<|endoftext|>";

nlohmann::json read_json(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  K5_CHECK(file.good(), "cannot open ", path);
  try {
    return nlohmann::json::parse(file);
  } catch (const nlohmann::json::exception& error) {
    fail(path, ": invalid JSON: ", error.what());
  }
}

}  // namespace

struct ClipTokenizer::Impl {
  std::string source;
  bpe::BpeModel model;
  bpe::SplitRegex words;
  int32_t bos_id, eos_id, pad_id;
};

ClipTokenizer ClipTokenizer::load(const std::string& dir_or_file) {
  namespace fs = std::filesystem;
  std::optional<bpe::BpeModel> model;
  std::string source, config_path;
  auto load_tokenizer_json = [&](const std::string& path) {
    const nlohmann::json json = read_json(path);
    K5_CHECK(json.contains("model") && json["model"].contains("vocab") && json["model"].contains("merges"), path,
             ": no model.vocab / model.merges");
    model.emplace(bpe::parse_vocab(json["model"]["vocab"], path), bpe::parse_merges(json["model"]["merges"], path),
                  "</w>", path);
    source = path;
  };
  if (fs::is_directory(dir_or_file)) {
    const fs::path dir(dir_or_file);
    config_path = (dir / "tokenizer_config.json").string();
    if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) {
      source = (dir / "vocab.json").string() + " + " + (dir / "merges.txt").string();
      model.emplace(bpe::read_vocab_json((dir / "vocab.json").string()),
                    bpe::read_merges_txt((dir / "merges.txt").string()), "</w>", source);
    } else if (fs::exists(dir / "tokenizer.json")) {
      load_tokenizer_json((dir / "tokenizer.json").string());
    } else {
      fail("no CLIP tokenizer in ", dir_or_file, ": looked for vocab.json + merges.txt or tokenizer.json");
    }
  } else {
    K5_CHECK(fs::exists(dir_or_file), "CLIP tokenizer not found: ", dir_or_file,
             " (expected a folder with vocab.json + merges.txt or tokenizer.json)");
    load_tokenizer_json(dir_or_file);
  }
  const auto bos = model->token_id(kStartOfText), eos = model->token_id(kEndOfText);
  K5_CHECK(bos && eos, source, ": the vocabulary lacks ", kStartOfText, " or ", kEndOfText);
  int32_t pad = *eos;
  if (!config_path.empty() && fs::exists(config_path)) {
    const nlohmann::json config = read_json(config_path);
    if (config.contains("pad_token")) {
      const auto& entry = config["pad_token"];
      const std::string pad_token = entry.is_string()   ? entry.get<std::string>()
                                    : entry.is_object() ? entry.value("content", std::string(kEndOfText))
                                                        : std::string(kEndOfText);
      const auto found = model->token_id(pad_token);
      K5_CHECK(found.has_value(), config_path, ": pad_token '", pad_token, "' is not in the vocabulary");
      pad = *found;
    }
  }
  return ClipTokenizer(
      std::make_shared<Impl>(Impl{source, std::move(*model), bpe::SplitRegex(kClipWordPattern), *bos, *eos, pad}));
}

std::vector<int32_t> ClipTokenizer::encode(std::string_view text) const {
  const Impl& impl = *impl_;
  bpe::check_utf8(text, "CLIP tokenizer input");
  std::vector<int32_t> ids;
  std::vector<std::string_view> pieces;
  auto encode_plain = [&](std::string_view stretch) {
    if (stretch.empty()) return;
    const std::string normalized = bpe::lowercase(bpe::collapse_whitespace(bpe::nfc(stretch)));
    pieces.clear();
    impl.words.matches(normalized, pieces);
    for (std::string_view piece : pieces) impl.model.encode_word(piece, ids);
  };
  // The two special tokens are added tokens: cut out of the raw text before normalisation.
  const std::string_view specials[2] = {kStartOfText, kEndOfText};
  const int32_t special_ids[2] = {impl.bos_id, impl.eos_id};
  size_t stretch_start = 0, i = 0;
  while (i < text.size()) {
    int matched = -1;
    if (text[i] == '<')
      for (int k = 0; k < 2; ++k)
        if (text.compare(i, specials[k].size(), specials[k]) == 0) matched = k;
    if (matched < 0) {
      ++i;
      continue;
    }
    encode_plain(text.substr(stretch_start, i - stretch_start));
    ids.push_back(special_ids[matched]);
    i += specials[matched].size();
    stretch_start = i;
  }
  encode_plain(text.substr(stretch_start));
  return ids;
}

ClipTokenizer::Encoding ClipTokenizer::encode_padded(std::string_view text, int max_length) const {
  K5_CHECK(max_length >= 2, "CLIP encode: max_length ", max_length, " leaves no room for BOS and EOS");
  std::vector<int32_t> content = encode(text);
  if (content.size() > size_t(max_length - 2)) content.resize(size_t(max_length - 2));
  Encoding encoding;
  encoding.ids.reserve(size_t(max_length));
  encoding.ids.push_back(impl_->bos_id);
  encoding.ids.insert(encoding.ids.end(), content.begin(), content.end());
  encoding.ids.push_back(impl_->eos_id);
  encoding.mask.assign(encoding.ids.size(), 1);
  encoding.ids.resize(size_t(max_length), impl_->pad_id);
  encoding.mask.resize(size_t(max_length), 0);
  return encoding;
}

std::string ClipTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (const int32_t id : ids) {
    if (skip_special_tokens && (id == impl_->bos_id || id == impl_->eos_id || id == impl_->pad_id)) continue;
    const std::string* token = impl_->model.token(id);
    K5_CHECK(token != nullptr && !token->empty(), "CLIP decode: token id ", id, " is not in the vocabulary of ",
             impl_->source);
    bpe::append_unicode_bytes(*token, bytes);
  }
  std::string text = bpe::utf8_lossy(bytes);
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, 4, "</w>") == 0) {
      out.push_back(' ');
      i += 4;
    } else {
      out.push_back(text[i++]);
    }
  }
  const size_t begin = out.find_first_not_of(" \t\n\r\f\v");
  if (begin == std::string::npos) return {};
  return out.substr(begin, out.find_last_not_of(" \t\n\r\f\v") - begin + 1);
}

std::optional<int32_t> ClipTokenizer::token_id(std::string_view token) const { return impl_->model.token_id(token); }
int32_t ClipTokenizer::bos_id() const { return impl_->bos_id; }
int32_t ClipTokenizer::eos_id() const { return impl_->eos_id; }
int32_t ClipTokenizer::pad_id() const { return impl_->pad_id; }

}  // namespace k5
