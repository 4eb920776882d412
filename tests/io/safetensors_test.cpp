#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "io/io_test_util.h"
#include "io/json_fields.h"
#include "support/compare.h"

namespace k5 {
namespace {

using test::read_bytes;
using test::safetensors_bytes;
using test::ScratchDir;
using test::write_bytes;
using test::write_text;

const DType kAllDTypes[] = {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3, DType::I8,
                            DType::I32, DType::I64,  DType::U8,  DType::BOOL};

// A tensor whose bytes are a deterministic pattern (valid for every dtype: BOOL gets 0/1).
Tensor patterned(DType dtype, Shape shape, uint8_t seed) {
  Tensor tensor = Tensor::empty(dtype, std::move(shape));
  auto* bytes = tensor.data<uint8_t>();
  for (size_t i = 0; i < tensor.bytes(); ++i) bytes[i] = dtype == DType::BOOL ? uint8_t((i + seed) & 1) : uint8_t(i * 31 + seed);
  return tensor;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  const Tensor x = a.contiguous(), y = b.contiguous();
  return x.dtype() == y.dtype() && x.shape() == y.shape() && std::memcmp(x.raw(), y.raw(), x.bytes()) == 0;
}

// Expects `open` to throw k5::Error whose message contains every fragment.
template <typename Open>
void expect_error(Open open, std::initializer_list<std::string> fragments) {
  try {
    open();
    ADD_FAILURE() << "no error; expected one containing '" << *fragments.begin() << "'";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    for (const auto& fragment : fragments) EXPECT_NE(message.find(fragment), std::string::npos) << message;
  }
}

TEST(Safetensors, RoundTripEveryDtype) {
  ScratchDir dir;
  std::vector<std::pair<std::string, Tensor>> tensors;
  uint8_t seed = 1;
  for (DType dtype : kAllDTypes) tensors.emplace_back("t." + std::string(dtype_name(dtype)), patterned(dtype, {3, 5}, seed++));
  const std::string path = dir.file("all.safetensors");
  save_safetensors(path, tensors, {{"format", "pt"}, {"k5", "round trip"}});

  const auto file = SafetensorsFile::open(path);
  ASSERT_EQ(file->tensors().size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    EXPECT_TRUE(same_bytes(file->tensor(name), expected)) << name;
    EXPECT_EQ(file->info(name).dtype, expected.dtype());
  }
  EXPECT_EQ(file->metadata().at("k5"), "round trip");
  EXPECT_EQ(file->metadata().at("format"), "pt");
  // Tensors are listed in data order, which is the order they were given.
  for (size_t i = 0; i < tensors.size(); ++i) EXPECT_EQ(file->tensors()[i].name, tensors[i].first);
  // The header is padded so every tensor starts 8-byte aligned.
  const auto bytes = read_bytes(path);
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes.data(), 8);
  EXPECT_EQ(header_bytes % 8, 0u);
}

TEST(Safetensors, ZeroCopyViewOutlivesTheFile) {
  ScratchDir dir;
  const Tensor expected = patterned(DType::F32, {16, 4}, 3);
  save_safetensors(dir.file("a.safetensors"), {{"w", expected}});
  Tensor view;
  {
    auto file = SafetensorsFile::open(dir.file("a.safetensors"));
    view = file->tensor("w");
    // Borrowed from the mapping, not a private copy.
    EXPECT_NE(view.storage()->data(), nullptr);
    EXPECT_EQ(view.storage()->bytes(), expected.bytes());
  }
  EXPECT_TRUE(same_bytes(view, expected));  // the mapping is kept alive by the view
}

TEST(Safetensors, ZeroSizeScalarAndStridedTensors) {
  ScratchDir dir;
  const Tensor empty = Tensor::empty(DType::BF16, {0, 7});
  const Tensor scalar = Tensor::from_f32({4.5f}, {});
  const Tensor matrix = patterned(DType::F32, {3, 4}, 9);
  const Tensor transposed = matrix.transpose(0, 1);  // non-contiguous: written contiguous
  save_safetensors(dir.file("z.safetensors"), {{"empty", empty}, {"scalar", scalar}, {"transposed", transposed}, {"empty2", empty}});
  const auto file = SafetensorsFile::open(dir.file("z.safetensors"));
  EXPECT_EQ(file->tensor("empty").shape(), (Shape{0, 7}));
  EXPECT_EQ(file->tensor("empty").numel(), 0);
  EXPECT_EQ(file->tensor("scalar").shape(), Shape{});
  EXPECT_EQ(file->tensor("scalar").to_f32_vector(), std::vector<float>{4.5f});
  EXPECT_TRUE(same_bytes(file->tensor("transposed"), transposed));
  EXPECT_TRUE(file->metadata().empty());
}

TEST(Safetensors, WriterRejectsBadInput) {
  ScratchDir dir;
  const Tensor t = patterned(DType::F32, {2}, 1);
  expect_error([&] { save_safetensors(dir.file("d.safetensors"), {{"a", t}, {"a", t}}); }, {"'a' given twice"});
  expect_error([&] { save_safetensors(dir.file("d.safetensors"), {{"__metadata__", t}}); }, {"invalid tensor name"});
  expect_error([&] { save_safetensors(dir.file("d.safetensors"), {{"u", Tensor()}}); }, {"'u' is undefined"});
  expect_error([&] { save_safetensors(dir.path() + "/missing/d.safetensors", {{"a", t}}); }, {"does not exist"});
  EXPECT_FALSE(std::filesystem::exists(dir.file("d.safetensors")));
}

TEST(Safetensors, ReadsFilesWrittenByThePythonPackage) {
  // tools/golden/safetensors_samples.py wrote these with safetensors.torch.save_file.
  const auto file = SafetensorsFile::open(test::source_path("tests/golden/io/reference_torch.safetensors"));
  const auto expected = read_json_file(test::source_path("tests/golden/io/reference_expected.json"));
  EXPECT_EQ(file->metadata().at("note"), "k5 interop sample");
  EXPECT_EQ(file->tensors().size(), expected["tensors"].size());
  const std::map<std::string, DType> torch_dtypes = {
      {"float32", DType::F32}, {"bfloat16", DType::BF16}, {"float16", DType::F16}, {"float8_e4m3fn", DType::F8_E4M3},
      {"int64", DType::I64},   {"int32", DType::I32},     {"int8", DType::I8},     {"uint8", DType::U8},
      {"bool", DType::BOOL}};
  for (const auto& [name, entry] : expected["tensors"].items()) {
    const Tensor tensor = file->tensor(name);
    EXPECT_EQ(tensor.dtype(), torch_dtypes.at(entry["dtype"].get<std::string>())) << name;
    EXPECT_EQ(tensor.shape(), entry["shape"].get<Shape>()) << name;
    const auto values = tensor.to_f32_vector();
    const auto reference = entry["values"].get<std::vector<double>>();
    ASSERT_EQ(values.size(), reference.size()) << name;
    for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(double(values[i]), reference[i]) << name << "[" << i << "]";
  }
}

TEST(Safetensors, WrittenFilesAreReadableByThePythonPackageLayout) {
  // The reference reader requires: 8-byte little-endian length, JSON header, data offsets covering the data.
  ScratchDir dir;
  save_safetensors(dir.file("w.safetensors"), {{"b", patterned(DType::BF16, {2, 3}, 1)}, {"a", patterned(DType::I64, {2}, 2)}},
                   {{"format", "pt"}});
  const auto bytes = read_bytes(dir.file("w.safetensors"));
  uint64_t header_bytes = 0;
  std::memcpy(&header_bytes, bytes.data(), 8);
  const auto header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + int64_t(header_bytes));
  EXPECT_EQ(header["__metadata__"]["format"], "pt");
  EXPECT_EQ(header["b"]["dtype"], "BF16");
  EXPECT_EQ(header["b"]["data_offsets"], nlohmann::json({0, 12}));
  EXPECT_EQ(header["a"]["data_offsets"], nlohmann::json({12, 28}));
  EXPECT_EQ(bytes.size(), 8 + header_bytes + 28);
}

TEST(Safetensors, ErrorsNameFileAndTensor) {
  ScratchDir dir;
  const std::string path = dir.file("model.safetensors");
  write_bytes(path, safetensors_bytes(R"({"blocks.0.weight":{"dtype":"F32","shape":[4,8],"data_offsets":[0,96]}})", 96));
  expect_error([&] { SafetensorsFile::open(path); },
               {"model.safetensors: tensor 'blocks.0.weight': byte range [0, 96) does not match F32 [4, 8] (128 bytes)"});
}

struct BadFile {
  const char* what;
  std::string header;
  size_t data_bytes;
  std::string fragment;
};

TEST(Safetensors, RejectsMalformedHeaders) {
  ScratchDir dir;
  const std::string ok = R"("x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::vector<BadFile> cases = {
      {"invalid JSON", "{\"x\": [", 8, "not valid JSON"},
      {"not an object", "[1, 2]", 8, "must be a JSON object"},
      {"entry not object", R"({"x": 3})", 8, "tensor 'x': entry must be an object"},
      {"unknown dtype", R"({"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", 8, "unsupported dtype 'F64' (known: F32, BF16"},
      {"dtype not string", R"({"x":{"dtype":5,"shape":[1],"data_offsets":[0,4]}})", 8, "'dtype' must be a string"},
      {"missing shape", R"({"x":{"dtype":"F32","data_offsets":[0,4]}})", 8, "missing 'shape'"},
      {"unknown field", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}})", 8, "unknown field 'extra'"},
      {"negative shape", R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 8, "non-negative integers"},
      {"float shape", R"({"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 8, "non-negative integers"},
      {"overflowing shape", R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", 8, "overflows"},
      {"huge extent", R"({"x":{"dtype":"BF16","shape":[9223372036854775807],"data_offsets":[0,4]}})", 8, "overflows"},
      {"past the end", R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8, "runs past the data block (8 bytes)"},
      {"reversed", R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8, "is reversed"},
      {"offsets wrong type", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":"0-4"}})", 8, "'data_offsets' must be two"},
      {"offsets three", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", 8, "'data_offsets' must be two"},
      {"wrong byte size", R"({"x":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}})", 8, "does not match F16 [3] (6 bytes)"},
      {"overlap", R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12, "overlaps tensor"},
      {"duplicate", "{" + ok + "," + ok + "}", 8, "'x' appears twice"},
      {"metadata not object", R"({"__metadata__":[1]})", 0, "__metadata__ must be an object"},
      {"metadata not string", R"({"__metadata__":{"a":1}})", 0, "__metadata__ 'a' must be a string"},
      {"deep nesting", std::string(1000, '[') + std::string(1000, ']'), 0, "nests deeper"},
  };
  for (const auto& bad : cases) {
    SCOPED_TRACE(bad.what);
    const std::string path = dir.file("bad.safetensors");
    write_bytes(path, safetensors_bytes(bad.header, bad.data_bytes));
    expect_error([&] { SafetensorsFile::open(path); }, {"bad.safetensors", bad.fragment});
  }
}

TEST(Safetensors, RejectsBadHeaderLengths) {
  ScratchDir dir;
  const std::string path = dir.file("len.safetensors");
  write_bytes(path, {1, 2, 3});
  expect_error([&] { SafetensorsFile::open(path); }, {"shorter than the 8-byte header length"});
  write_bytes(path, {});
  expect_error([&] { SafetensorsFile::open(path); }, {"is 0 bytes"});
  write_bytes(path, safetensors_bytes("{}", 0, ~uint64_t(0)));
  expect_error([&] { SafetensorsFile::open(path); }, {"exceeds the 100000000-byte limit"});
  write_bytes(path, safetensors_bytes("{}", 0, 3));
  expect_error([&] { SafetensorsFile::open(path); }, {"larger than the file"});
  write_bytes(path, safetensors_bytes("{}", 0, 0));
  expect_error([&] { SafetensorsFile::open(path); }, {"too short"});
  expect_error([&] { SafetensorsFile::open(dir.file("absent.safetensors")); }, {"absent.safetensors: cannot open"});
}

TEST(Safetensors, MisalignedDataIsCopied) {
  // An unpadded header (legal; other writers may do it) puts the F32 data at an odd address.
  ScratchDir dir;
  std::string header = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  if ((8 + header.size()) % 4 == 0) header += " ";
  std::vector<uint8_t> bytes = safetensors_bytes(header, 0);
  const float values[2] = {1.5f, -2.0f};
  bytes.insert(bytes.end(), reinterpret_cast<const uint8_t*>(values), reinterpret_cast<const uint8_t*>(values) + 8);
  write_bytes(dir.file("m.safetensors"), bytes);
  const Tensor x = SafetensorsFile::open(dir.file("m.safetensors"))->tensor("x");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(x.raw()) % 4, 0u);
  EXPECT_EQ(x.to_f32_vector(), (std::vector<float>{1.5f, -2.0f}));
}

// Every prefix of a valid file, and thousands of byte flips, must give k5::Error or a valid file: never a
// crash or an out-of-bounds read (this suite also runs under ASan/UBSan).
void open_and_touch(const std::string& path) {
  const auto file = SafetensorsFile::open(path);
  for (const auto& info : file->tensors()) {
    const Tensor tensor = file->tensor(info.name);
    volatile uint8_t sink = 0;
    const auto* bytes = static_cast<const uint8_t*>(tensor.raw());
    for (size_t i = 0; i < tensor.bytes(); ++i) sink = sink ^ bytes[i];
  }
}

std::vector<uint8_t> small_valid_file(const ScratchDir& dir) {
  save_safetensors(dir.file("seed.safetensors"),
                   {{"a", patterned(DType::F32, {2, 3}, 1)}, {"b", patterned(DType::BF16, {4}, 2)},
                    {"c", patterned(DType::I64, {0, 2}, 3)}, {"d", patterned(DType::U8, {}, 4)}},
                   {{"format", "pt"}});
  return read_bytes(dir.file("seed.safetensors"));
}

TEST(SafetensorsFuzz, EveryTruncationIsAnError) {
  ScratchDir dir;
  const auto valid = small_valid_file(dir);
  const std::string path = dir.file("cut.safetensors");
  for (size_t length = 0; length < valid.size(); ++length) {
    write_bytes(path, std::vector<uint8_t>(valid.begin(), valid.begin() + int64_t(length)));
    EXPECT_THROW(open_and_touch(path), Error) << "prefix of " << length << " bytes";
  }
  write_bytes(path, valid);
  EXPECT_NO_THROW(open_and_touch(path));
}

TEST(SafetensorsFuzz, RandomByteFlipsNeverCrash) {
  ScratchDir dir;
  const auto valid = small_valid_file(dir);
  const std::string path = dir.file("flip.safetensors");
  std::mt19937 random(20251128);
  int opened = 0, rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    auto bytes = valid;
    const int flips = 1 + int(random() % 4);
    for (int f = 0; f < flips; ++f) {
      // Mostly hit the length field and header, where parsing happens.
      const size_t limit = (trial % 4 == 0) ? bytes.size() : std::min<size_t>(bytes.size(), 8 + 200);
      const size_t at = random() % limit;
      bytes[at] = (trial % 3 == 0) ? uint8_t(random()) : uint8_t(bytes[at] ^ (1u << (random() % 8)));
    }
    write_bytes(path, bytes);
    try {
      open_and_touch(path);
      ++opened;
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_EQ(opened + rejected, 3000);
}

// ---------------------------------------------------------------------------------------------------------
// Sharded checkpoints

class ShardedCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    save_safetensors(dir.file("model-00001-of-00002.safetensors"), {{"a", a}, {"b", b}});
    save_safetensors(dir.file("model-00002-of-00002.safetensors"), {{"c", c}});
  }
  void write_index(const nlohmann::json& weight_map) {
    write_text(dir.file("model.safetensors.index.json"),
               nlohmann::json({{"metadata", {{"total_size", 1}}}, {"weight_map", weight_map}}).dump());
  }
  ScratchDir dir;
  Tensor a = patterned(DType::F32, {2, 2}, 1), b = patterned(DType::BF16, {3}, 2), c = patterned(DType::I32, {5}, 3);
};

TEST_F(ShardedCheckpoint, OpensThroughIndexAndDirectory) {
  write_index({{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00001-of-00002.safetensors"},
               {"c", "model-00002-of-00002.safetensors"}});
  for (const std::string& path : {dir.file("model.safetensors.index.json"), dir.path()}) {
    const Checkpoint checkpoint = Checkpoint::open(path);
    EXPECT_EQ(checkpoint.names(), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(checkpoint.files().size(), 2u);
    EXPECT_TRUE(same_bytes(checkpoint.tensor("a"), a));
    EXPECT_TRUE(same_bytes(checkpoint.tensor("c"), c));
    EXPECT_EQ(checkpoint.info("b").dtype, DType::BF16);
    expect_error([&] { checkpoint.tensor("zzz"); }, {"no tensor 'zzz'"});
  }
}

TEST_F(ShardedCheckpoint, DirectoryWithoutIndexTakesEveryFile) {
  const Checkpoint checkpoint = Checkpoint::open(dir.path());
  EXPECT_EQ(checkpoint.names(), (std::vector<std::string>{"a", "b", "c"}));
  save_safetensors(dir.file("extra.safetensors"), {{"c", c}});
  expect_error([&] { Checkpoint::open(dir.path()); }, {"tensor 'c' is in both"});
}

TEST_F(ShardedCheckpoint, SingleFile) {
  const Checkpoint checkpoint = Checkpoint::open(dir.file("model-00002-of-00002.safetensors"));
  EXPECT_EQ(checkpoint.names(), std::vector<std::string>{"c"});
}

TEST_F(ShardedCheckpoint, IndexErrors) {
  write_index({{"a", "model-00001-of-00002.safetensors"}, {"c", "model-00001-of-00002.safetensors"}});
  expect_error([&] { Checkpoint::open(dir.file("model.safetensors.index.json")); },
               {"model.safetensors.index.json: tensor 'c' is missing from its shard 'model-00001-of-00002.safetensors'"});
  write_index({{"a", "model-00009-of-00009.safetensors"}});
  expect_error([&] { Checkpoint::open(dir.path()); }, {"shard 'model-00009-of-00009.safetensors'", "does not exist"});
  write_index({{"a", 3}});
  expect_error([&] { Checkpoint::open(dir.path()); }, {"weight_map 'a' must be a string"});
  write_text(dir.file("model.safetensors.index.json"), "{\"weight_map\": ");
  expect_error([&] { Checkpoint::open(dir.path()); }, {"not valid JSON"});
  write_text(dir.file("model.safetensors.index.json"), "{\"weights\": {}}");
  expect_error([&] { Checkpoint::open(dir.path()); }, {"'weight_map' must be an object"});
  expect_error([&] { Checkpoint::open(dir.path() + "/nowhere"); }, {"does not exist"});
}

TEST(Checkpoint, EmptyDirectoryIsAnError) {
  ScratchDir dir;
  expect_error([&] { Checkpoint::open(dir.path()); }, {"no .safetensors files"});
}

}  // namespace
}  // namespace k5
