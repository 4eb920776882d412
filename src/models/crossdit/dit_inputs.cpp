#include "models/crossdit/dit_inputs.h"

#include "core/error.h"

namespace k5 {

DitInputFile::DitInputFile(const std::string& path, const std::set<std::string>& known)
    : path_(path), file_(SafetensorsFile::open(path)) {
  for (const TensorInfo& info : file_->tensors())
    K5_CHECK(known.count(info.name), path, ": unknown input tensor '", info.name, "'");
}

DitInputs read_dit_inputs(const DitInputFile& file) {
  DitInputs inputs;
  inputs.x = file.float_tensor("x");
  inputs.text_embed = file.float_tensor("text_embed");
  inputs.pooled_text_embed = file.float_tensor("pooled_text_embed");
  const Tensor time = file.float_tensor("time");
  K5_CHECK(time.numel() == 1, file.path(), ": input 'time' has shape ", shape_string(time.shape()), ", expected [1]");
  inputs.time = time.data<float>()[0];
  if (inputs.text_embed.dim() == 2) inputs.attention_mask = file.mask("attention_mask", inputs.text_embed.size(0));
  return inputs;
}

Tensor DitInputFile::float_tensor(const std::string& name) const {
  K5_CHECK(has(name), path_, ": missing input tensor '", name, "'");
  const Tensor t = file_->tensor(name);
  K5_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16 || t.dtype() == DType::F16, path_, ": input '",
           name, "' is ", t.describe(), ", expected F32, BF16 or F16");
  return t.to(DType::F32).contiguous().clone();
}

Tensor DitInputFile::mask(const std::string& name, int64_t length) const {
  if (!has(name)) return Tensor();
  const Tensor t = file_->tensor(name);
  K5_CHECK(t.shape() == Shape({1, length}) || t.shape() == Shape({length}), path_, ": input '", name,
           "' has shape ", shape_string(t.shape()), ", expected [1, ", length, "]");
  Tensor mask = Tensor::zeros(DType::U8, {length});
  uint8_t* out = mask.data<uint8_t>();
  const Tensor source = t.contiguous();
  switch (source.dtype()) {
    case DType::U8:
    case DType::BOOL:
    case DType::I8:
      for (int64_t i = 0; i < length; ++i) out[i] = source.data<uint8_t>()[i] != 0;
      break;
    case DType::I32:
      for (int64_t i = 0; i < length; ++i) out[i] = source.data<int32_t>()[i] != 0;
      break;
    case DType::I64:
      for (int64_t i = 0; i < length; ++i) out[i] = source.data<int64_t>()[i] != 0;
      break;
    default: {
      const std::vector<float> values = source.to_f32_vector();
      for (int64_t i = 0; i < length; ++i) out[i] = values[size_t(i)] != 0.0f;
    }
  }
  return mask;
}

}  // namespace k5
