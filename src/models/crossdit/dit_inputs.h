// Reading the `k5 forward dit` / `k5 forward sample` input tensors (contracts/forward.md): float tensors in
// F32/BF16/F16 become F32; masks [1, L] U8/BOOL (or any integer/float 0/1) become [L] U8.
#pragma once

#include <set>
#include <string>

#include "core/tensor.h"
#include "io/safetensors.h"
#include "models/crossdit/crossdit.h"

namespace k5 {

class DitInputFile {
 public:
  // Refuses any tensor not named in `known` ("unknown input tensor 'y'").
  DitInputFile(const std::string& path, const std::set<std::string>& known);

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const { return file_->contains(name); }
  // F32 contiguous copy; throws "missing input tensor" when absent.
  Tensor float_tensor(const std::string& name) const;
  Tensor optional_float(const std::string& name) const { return has(name) ? float_tensor(name) : Tensor(); }
  // [1, L] mask -> [L] U8; undefined when absent.
  Tensor mask(const std::string& name, int64_t length) const;

 private:
  std::string path_;
  std::shared_ptr<SafetensorsFile> file_;
};

// The `k5 forward dit` inputs: x, text_embed, pooled_text_embed, time ([1]) and the optional attention_mask.
DitInputs read_dit_inputs(const DitInputFile& file);

}  // namespace k5
