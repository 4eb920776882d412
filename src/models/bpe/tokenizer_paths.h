// Where the tokenizers of a Kandinsky 5 model folder live (official layout: text_encoder/ holds the
// Qwen2.5-VL tokenizer, text_encoder2/ the CLIP one, possibly under weights/), or a tokenizer folder/file
// given directly.
#pragma once

#include <string>

namespace k5 {

// A tokenizer.json or a folder with vocab.json + merges.txt, for BpeTokenizer::load; throws k5::Error
// naming every place looked at when there is none.
std::string find_qwen_tokenizer(const std::string& model_dir);
// A folder with vocab.json + merges.txt or tokenizer.json (or a tokenizer.json), for ClipTokenizer::load.
std::string find_clip_tokenizer(const std::string& model_dir);

}  // namespace k5
