#include "models/qwen25vl/token_inputs.h"

#include <limits>

#include "io/safetensors.h"

namespace k5 {

namespace {

std::vector<int64_t> integers(const std::string& path, const std::string& name, const Tensor& stored) {
  const Tensor tensor = stored.contiguous();
  std::vector<int64_t> values(size_t(tensor.numel()));
  for (size_t i = 0; i < values.size(); ++i) {
    switch (tensor.dtype()) {
      case DType::I64: values[i] = tensor.data<int64_t>()[i]; break;
      case DType::I32: values[i] = tensor.data<int32_t>()[i]; break;
      case DType::I8: values[i] = tensor.data<int8_t>()[i]; break;
      case DType::U8:
      case DType::BOOL: values[i] = tensor.data<uint8_t>()[i]; break;
      default: fail(path, ": '", name, "' must be an integer tensor, got ", tensor.describe());
    }
  }
  return values;
}

}  // namespace

TokenInputs read_token_inputs(const std::string& path) {
  const auto file = SafetensorsFile::open(path);
  K5_CHECK(file->contains("input_ids"), path, ": missing input tensor 'input_ids'");
  const Tensor ids = file->tensor("input_ids");
  K5_CHECK(ids.dim() == 2 && ids.size(0) == 1 && ids.size(1) >= 1, path, ": 'input_ids' must be [1, L], got ",
           ids.describe());
  K5_CHECK(ids.dtype() == DType::I32 || ids.dtype() == DType::I64, path, ": 'input_ids' must be I32 or I64, got ",
           ids.describe());
  TokenInputs inputs;
  for (int64_t id : integers(path, "input_ids", ids)) {
    K5_CHECK(id >= 0 && id <= std::numeric_limits<int32_t>::max(), path, ": 'input_ids' holds invalid id ", id);
    inputs.input_ids.push_back(int32_t(id));
  }
  if (file->contains("attention_mask")) {
    const Tensor mask = file->tensor("attention_mask");
    K5_CHECK(mask.shape() == ids.shape(), path, ": 'attention_mask' must have the shape of input_ids ",
             shape_string(ids.shape()), ", got ", mask.describe());
    if (is_floating(mask.dtype())) {
      for (float v : mask.to_f32_vector()) inputs.attention_mask.push_back(v != 0.0f ? 1 : 0);
    } else {
      for (int64_t v : integers(path, "attention_mask", mask)) inputs.attention_mask.push_back(v != 0 ? 1 : 0);
    }
  }
  return inputs;
}

}  // namespace k5
