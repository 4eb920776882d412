// libFuzzer target for the safetensors reader: any input must open cleanly or throw k5::Error; never crash
// or read out of bounds. Build and run: see tools/fuzz/CMakeLists.txt.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "io/safetensors.h"

namespace {

// The reader maps files, so each input goes through a file in /dev/shm (memory-backed, per process).
const std::string& input_path() {
  static const std::string path = "/dev/shm/k5_fuzz_" + std::to_string(::getpid()) + ".safetensors";
  static const bool removed_at_exit = (std::atexit([] { std::remove(input_path().c_str()); }), true);
  (void)removed_at_exit;
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::FILE* file = std::fopen(input_path().c_str(), "wb");
  if (!file) return 0;
  std::fwrite(data, 1, size, file);
  std::fclose(file);
  try {
    const auto opened = k5::SafetensorsFile::open(input_path());
    for (const auto& info : opened->tensors()) {
      const k5::Tensor tensor = opened->tensor(info.name);
      volatile uint8_t sink = 0;
      const auto* bytes = static_cast<const uint8_t*>(tensor.raw());
      for (size_t i = 0; i < tensor.bytes(); ++i) sink = sink ^ bytes[i];
    }
  } catch (const k5::Error&) {
  }
  return 0;
}
