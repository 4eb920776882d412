// Reads the token inputs of the text encoders from a safetensors file: `input_ids` [1, L] (I32/I64) and an
// optional `attention_mask` [1, L] (integer, BOOL or float; nonzero = real token).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace k5 {

struct TokenInputs {
  std::vector<int32_t> input_ids;
  std::vector<uint8_t> attention_mask;  // empty when the file has none
};

TokenInputs read_token_inputs(const std::string& path);

}  // namespace k5
