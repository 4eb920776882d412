#include "io/safetensors.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "io/atomic_file.h"

namespace k5 {

namespace {

namespace fs = std::filesystem;

// The reference implementation refuses headers above 100 MB; a real checkpoint header is a few MB at most.
constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;
// A valid header nests three levels deep ({name: {shape: [..]}}); a deeper one is hostile, and rejecting it
// before parsing bounds the parser's recursion.
constexpr int kMaxJsonDepth = 8;

std::string known_dtype_names() {
  std::string names;
  for (DType dtype : {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3, DType::I8, DType::I32, DType::I64,
                      DType::U8, DType::BOOL}) {
    if (!names.empty()) names += ", ";
    names += std::string(dtype_name(dtype));
  }
  return names;
}

uint64_t read_u64_le(const uint8_t* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | bytes[i];
  return value;
}

// Scans the header text for bracket nesting outside strings; a cheap guard, not a validator.
void check_json_depth(const std::string& path, const char* text, size_t length) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < length; ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      K5_CHECK(++depth <= kMaxJsonDepth, path, ": header JSON nests deeper than ", kMaxJsonDepth, " levels");
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
}

const char* json_type(const nlohmann::json& value) { return value.type_name(); }

// Non-negative integer that fits in int64 (JSON numbers may be unsigned, signed or float).
bool as_count(const nlohmann::json& value, uint64_t& out) {
  if (value.is_number_unsigned()) {
    out = value.get<uint64_t>();
    return out <= uint64_t(INT64_MAX);
  }
  if (value.is_number_integer()) {
    const int64_t signed_value = value.get<int64_t>();
    if (signed_value < 0) return false;
    out = uint64_t(signed_value);
    return true;
  }
  return false;
}

std::string range_string(uint64_t begin, uint64_t end) { return concat("[", begin, ", ", end, ")"); }

TensorInfo parse_tensor_entry(const std::string& path, const std::string& name, const nlohmann::json& entry,
                              uint64_t data_bytes) {
  const std::string where = concat(path, ": tensor '", name, "'");
  K5_CHECK(entry.is_object(), where, ": entry must be an object, found ", json_type(entry));
  for (const auto& [key, value] : entry.items()) {
    (void)value;
    K5_CHECK(key == "dtype" || key == "shape" || key == "data_offsets", where, ": unknown field '", key, "'");
  }
  K5_CHECK(entry.contains("dtype"), where, ": missing 'dtype'");
  K5_CHECK(entry.contains("shape"), where, ": missing 'shape'");
  K5_CHECK(entry.contains("data_offsets"), where, ": missing 'data_offsets'");

  const auto& dtype_json = entry["dtype"];
  K5_CHECK(dtype_json.is_string(), where, ": 'dtype' must be a string, found ", json_type(dtype_json));
  const std::string dtype_text = dtype_json.get<std::string>();
  const auto dtype = dtype_from_name(dtype_text);
  K5_CHECK(dtype.has_value(), where, ": unsupported dtype '", dtype_text, "' (known: ", known_dtype_names(), ")");

  const auto& shape_json = entry["shape"];
  K5_CHECK(shape_json.is_array(), where, ": 'shape' must be an array, found ", json_type(shape_json));
  TensorInfo info;
  info.name = name;
  info.dtype = *dtype;
  uint64_t bytes = dtype_size(*dtype);
  bool overflow = false;
  for (const auto& extent_json : shape_json) {
    uint64_t extent = 0;
    K5_CHECK(as_count(extent_json, extent), where, ": shape ", shape_json.dump(),
             " must hold non-negative integers");
    info.shape.push_back(int64_t(extent));
    if (__builtin_mul_overflow(bytes, extent, &bytes)) overflow = true;
  }
  K5_CHECK(!overflow && bytes <= uint64_t(INT64_MAX), where, ": ", dtype_text, " ", shape_string(info.shape),
           " is too large (byte size overflows)");

  const auto& offsets = entry["data_offsets"];
  uint64_t begin = 0, end = 0;
  K5_CHECK(offsets.is_array() && offsets.size() == 2 && as_count(offsets[0], begin) && as_count(offsets[1], end),
           where, ": 'data_offsets' must be two non-negative integers, found ", offsets.dump());
  K5_CHECK(begin <= end, where, ": byte range ", range_string(begin, end), " is reversed");
  K5_CHECK(end <= data_bytes, where, ": byte range ", range_string(begin, end), " runs past the data block (",
           data_bytes, " bytes)");
  K5_CHECK(end - begin == bytes, where, ": byte range ", range_string(begin, end), " does not match ", dtype_text,
           " ", shape_string(info.shape), " (", bytes, " bytes)");
  info.begin = size_t(begin);
  info.end = size_t(end);
  return info;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// SafetensorsFile

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto result = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  result->file_ = MappedFile::open(path);
  const MappedFile& file = *result->file_;
  const std::string& label = path;
  K5_CHECK(file.size() >= 8, label, ": file is ", file.size(),
           " bytes, shorter than the 8-byte header length (not a safetensors file?)");
  const uint64_t header_bytes = read_u64_le(file.data());
  K5_CHECK(header_bytes <= kMaxHeaderBytes, label, ": header length ", header_bytes, " exceeds the ",
           kMaxHeaderBytes, "-byte limit (not a safetensors file?)");
  K5_CHECK(header_bytes <= file.size() - 8, label, ": header length ", header_bytes, " is larger than the file (",
           file.size(), " bytes): truncated?");
  K5_CHECK(header_bytes >= 2, label, ": header length ", header_bytes, " is too short for a JSON object");
  const char* header_text = reinterpret_cast<const char*>(file.data() + 8);
  check_json_depth(label, header_text, size_t(header_bytes));

  // nlohmann keeps objects in a map: duplicate keys would silently collapse, so watch the parse events.
  std::set<std::string> top_level_keys;
  std::string duplicate;
  const nlohmann::json::parser_callback_t watch_keys = [&](int depth, nlohmann::json::parse_event_t event,
                                                         nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!top_level_keys.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(header_text, header_text + header_bytes, watch_keys);
  } catch (const nlohmann::json::exception& error) {
    fail(label, ": header is not valid JSON (", error.what(), ")");
  }
  K5_CHECK(duplicate.empty(), label, ": tensor '", duplicate, "' appears twice in the header");
  K5_CHECK(header.is_object(), label, ": header must be a JSON object, found ", json_type(header));

  result->data_start_ = size_t(8 + header_bytes);
  const uint64_t data_bytes = file.size() - result->data_start_;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      K5_CHECK(entry.is_object(), label, ": __metadata__ must be an object, found ", json_type(entry));
      for (const auto& [key, value] : entry.items()) {
        K5_CHECK(value.is_string(), label, ": __metadata__ '", key, "' must be a string, found ", json_type(value));
        result->metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    result->infos_.push_back(parse_tensor_entry(label, name, entry, data_bytes));
  }

  // File order is data order; ranges must not overlap (empty tensors occupy nothing).
  std::sort(result->infos_.begin(), result->infos_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : (a.end != b.end ? a.end < b.end : a.name < b.name);
  });
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& info : result->infos_) {
    if (info.begin == info.end) continue;
    K5_CHECK(!previous || info.begin >= previous->end, label, ": tensor '", info.name, "': byte range ",
             range_string(info.begin, info.end), " overlaps tensor '", previous ? previous->name : "", "' ",
             previous ? range_string(previous->begin, previous->end) : "");
    previous = &info;
  }
  for (size_t i = 0; i < result->infos_.size(); ++i) result->index_[result->infos_[i].name] = i;
  return result;
}

const std::string& SafetensorsFile::path() const { return file_->path(); }

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto found = index_.find(name);
  K5_CHECK(found != index_.end(), path(), ": no tensor '", name, "'");
  return infos_[found->second];
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo& entry = info(name);
  const uint8_t* address = file_->data() + data_start_ + entry.begin;
  const size_t element = dtype_size(entry.dtype);
  // Kernels assume naturally aligned elements; a header whose length is not a multiple of 8 (other
  // writers pad it, but nothing forces them to) would misalign them, so such tensors are copied.
  if (reinterpret_cast<uintptr_t>(address) % element != 0) {
    Tensor copy = Tensor::empty(entry.dtype, entry.shape);
    if (entry.end > entry.begin) std::memcpy(copy.raw(), address, entry.end - entry.begin);
    return copy;
  }
  // The mapping is read-only: the view must not be written (a write faults rather than corrupting the file).
  return Tensor::wrap(const_cast<uint8_t*>(address), entry.dtype, entry.shape, Device::CPU, file_);
}

namespace {

// The whole pages inside [first, first + bytes) (`inner`), or every page it touches.
std::pair<uintptr_t, uintptr_t> page_range(const uint8_t* first, size_t bytes, bool inner) {
  const auto page = uintptr_t(sysconf(_SC_PAGESIZE));
  const auto begin = uintptr_t(first), end = begin + bytes;
  if (inner) return {(begin + page - 1) / page * page, end / page * page};
  return {begin / page * page, end};
}

}  // namespace

void SafetensorsFile::release_pages(const std::string& name) const {
  const TensorInfo& entry = info(name);
  const auto [begin, end] = page_range(file_->data() + data_start_ + entry.begin, entry.end - entry.begin, true);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void SafetensorsFile::populate_pages(const std::string& name) const {
#ifdef MADV_POPULATE_READ
  const TensorInfo& entry = info(name);
  const auto [begin, end] = page_range(file_->data() + data_start_ + entry.begin, entry.end - entry.begin, false);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_READ);
#else
  (void)name;
#endif
}

// ---------------------------------------------------------------------------------------------------------
// Checkpoint

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint checkpoint;
  checkpoint.path_ = path;
  std::error_code error;
  const auto status = fs::status(path, error);
  K5_CHECK(fs::exists(status), path, ": does not exist");

  std::string index_path;
  std::vector<std::string> shard_paths;
  if (fs::is_directory(status)) {
    std::vector<std::string> indexes;
    for (const auto& item : fs::directory_iterator(path, error)) {
      const std::string name = item.path().filename().string();
      if (!item.is_regular_file(error) && !item.is_symlink(error)) continue;
      if (name.ends_with(".safetensors.index.json"))
        indexes.push_back(item.path().string());
      else if (name.ends_with(".safetensors"))
        shard_paths.push_back(item.path().string());
    }
    K5_CHECK(indexes.size() <= 1, path, ": ", indexes.size(), " *.safetensors.index.json files; name one of them");
    if (indexes.size() == 1) {
      index_path = indexes[0];
    } else {
      K5_CHECK(!shard_paths.empty(), path, ": no .safetensors files in this directory");
      std::sort(shard_paths.begin(), shard_paths.end());
    }
  } else if (path.ends_with(".json")) {
    index_path = path;
  } else {
    shard_paths.push_back(path);
  }

  if (!index_path.empty()) {
    checkpoint.path_ = index_path;
    nlohmann::json index;
    {
      std::FILE* stream = std::fopen(index_path.c_str(), "rb");
      K5_CHECK(stream, index_path, ": cannot open: ", std::strerror(errno));
      std::string text;
      char buffer[65536];
      size_t got;
      while ((got = std::fread(buffer, 1, sizeof buffer, stream)) > 0) text.append(buffer, got);
      std::fclose(stream);
      try {
        index = nlohmann::json::parse(text);
      } catch (const nlohmann::json::exception& parse_error) {
        fail(index_path, ": not valid JSON (", parse_error.what(), ")");
      }
    }
    K5_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(), index_path,
             ": 'weight_map' must be an object of tensor name -> shard file");
    const fs::path directory = fs::path(index_path).parent_path();
    std::map<std::string, size_t> shard_of_file;
    for (const auto& [name, shard_json] : index["weight_map"].items()) {
      K5_CHECK(shard_json.is_string(), index_path, ": weight_map '", name, "' must be a string, found ",
               shard_json.type_name());
      const std::string shard = shard_json.get<std::string>();
      auto found = shard_of_file.find(shard);
      if (found == shard_of_file.end()) {
        const std::string shard_path = (directory / shard).string();
        K5_CHECK(fs::is_regular_file(shard_path, error), index_path, ": shard '", shard, "' (for tensor '", name,
                 "') does not exist");
        checkpoint.files_.push_back(SafetensorsFile::open(shard_path));
        found = shard_of_file.emplace(shard, checkpoint.files_.size() - 1).first;
      }
      K5_CHECK(checkpoint.files_[found->second]->contains(name), index_path, ": tensor '", name,
               "' is missing from its shard '", shard, "'");
      checkpoint.owner_[name] = found->second;
    }
    return checkpoint;
  }

  for (const std::string& shard_path : shard_paths) {
    checkpoint.files_.push_back(SafetensorsFile::open(shard_path));
    const size_t owner = checkpoint.files_.size() - 1;
    for (const TensorInfo& info : checkpoint.files_.back()->tensors()) {
      const auto [where, inserted] = checkpoint.owner_.emplace(info.name, owner);
      K5_CHECK(inserted, path, ": tensor '", info.name, "' is in both ", checkpoint.files_[where->second]->path(),
               " and ", shard_path);
    }
  }
  return checkpoint;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> result;
  result.reserve(owner_.size());
  for (const auto& [name, owner] : owner_) result.push_back(name);
  return result;
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  const auto found = owner_.find(name);
  K5_CHECK(found != owner_.end(), path_, ": no tensor '", name, "'");
  return files_[found->second]->info(name);
}

Tensor Checkpoint::tensor(const std::string& name) const { return file_of(name).tensor(name); }

void Checkpoint::release_pages(const std::string& name) const { file_of(name).release_pages(name); }

void Checkpoint::populate_pages(const std::string& name) const { file_of(name).populate_pages(name); }

const SafetensorsFile& Checkpoint::file_of(const std::string& name) const {
  const auto found = owner_.find(name);
  K5_CHECK(found != owner_.end(), path_, ": no tensor '", name, "'");
  return *files_[found->second];
}

// ---------------------------------------------------------------------------------------------------------
// Writing

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Header first (the writer of reference puts __metadata__ first), offsets in the given order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json entries = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) entries[key] = value;
    header["__metadata__"] = std::move(entries);
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    K5_CHECK(!name.empty() && name != "__metadata__", path, ": invalid tensor name '", name, "'");
    K5_CHECK(seen.insert(name).second, path, ": tensor '", name, "' given twice");
    K5_CHECK(tensor.defined(), path, ": tensor '", name, "' is undefined");
    K5_CHECK(tensor.device() == Device::CPU, path, ": tensor '", name, "' is not in host memory");
    const uint64_t bytes = tensor.bytes();
    header[name] = {{"dtype", std::string(dtype_name(tensor.dtype()))},
                    {"shape", tensor.shape()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string header_text;
  try {
    header_text = header.dump();
  } catch (const nlohmann::json::exception& error) {
    fail(path, ": cannot encode the header (", error.what(), ")");
  }
  // Padding with spaces to a multiple of 8 keeps every tensor 8-byte aligned in the mapped file.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  write_atomically(path, [&](const std::string& temporary) {
    std::FILE* stream = std::fopen(temporary.c_str(), "wb");
    K5_CHECK(stream, path, ": cannot create: ", std::strerror(errno));
    bool ok = true;
    uint8_t length[8];
    for (int i = 0; i < 8; ++i) length[i] = uint8_t(uint64_t(header_text.size()) >> (8 * i));
    ok = ok && std::fwrite(length, 1, 8, stream) == 8;
    ok = ok && std::fwrite(header_text.data(), 1, header_text.size(), stream) == header_text.size();
    for (const auto& [name, tensor] : tensors) {
      if (!ok) break;
      if (tensor.numel() == 0) continue;
      const Tensor dense = tensor.contiguous();
      ok = std::fwrite(dense.raw(), 1, dense.bytes(), stream) == dense.bytes();
    }
    const int saved = errno;
    ok = (std::fclose(stream) == 0) && ok;
    K5_CHECK(ok, path, ": write failed: ", std::strerror(saved ? saved : errno));
  });
}

}  // namespace k5
