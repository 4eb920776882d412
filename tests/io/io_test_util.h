// Helpers shared by the tests of src/io: a scratch directory per test and raw file writers.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace k5::test {

// A fresh directory under the system temp dir, removed when the test ends.
class ScratchDir {
 public:
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string("k5_io_") + (info ? info->test_suite_name() + std::string("_") + info->name() : "x") +
                       "_" + std::to_string(::getpid());
    for (char& c : name)
      if (c == '/') c = '_';
    path_ = std::filesystem::temp_directory_path() / name;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A safetensors file from its header text (as given, no padding) and `data_bytes` bytes of data.
inline std::vector<uint8_t> safetensors_bytes(const std::string& header, size_t data_bytes, uint64_t length_field) {
  std::vector<uint8_t> bytes;
  bytes.reserve(8 + header.size() + data_bytes);
  for (int i = 0; i < 8; ++i) bytes.push_back(uint8_t(length_field >> (8 * i)));
  for (char c : header) bytes.push_back(uint8_t(c));
  for (size_t i = 0; i < data_bytes; ++i) bytes.push_back(uint8_t(i * 7 + 1));
  return bytes;
}

inline std::vector<uint8_t> safetensors_bytes(const std::string& header, size_t data_bytes) {
  return safetensors_bytes(header, data_bytes, header.size());
}

}  // namespace k5::test
