// The Kandinsky 5 prompt templates of the official Qwen2.5-VL embedder (kandinsky/models/text_embedders.py)
// and the tokenisation it applies: template lines joined with "\n", the prompt put in place of "{}",
// truncation to max_length + crop_start tokens, then
//   video / image / image2video: right-padding with <|endoftext|> to max_length + crop_start;
//   image_edit: no padding (the official call pads to the longest prompt of the batch: one prompt).
// The text encoder runs on all ids; the DiT receives the hidden states from crop_start on, with the mask
// from crop_start on.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "models/bpe/bpe_tokenizer.h"

namespace k5 {

enum class PromptContent { video, image, image_edit, image2video };

PromptContent parse_prompt_content(std::string_view name);  // "video", "image", "image_edit", "image2video"
const char* prompt_content_name(PromptContent content);

// The template text with "{}" where the prompt goes.
const std::string& kandinsky_prompt_template(PromptContent content);
// Tokens of the template prefix the official code drops: video 129, image 41, image_edit 55, image2video 132.
// For image_edit the real prefix is 52 tokens, so the official crop also drops the first 3 prompt tokens
// (reproduced on purpose; see tests/models/bpe/tokenizer_corpus_test.cpp).
int kandinsky_crop_start(PromptContent content);
// max_length of the official configs: 256 for video, 512 for images (the value passed as `max_length`).
int kandinsky_default_max_length(PromptContent content);

struct QwenPrompt {
  std::vector<int32_t> ids;                // [L]: the full templated sequence for the text encoder
  std::vector<uint8_t> mask;               // [L]: 1 for real tokens, 0 for padding
  int crop_start = 0;                      // the DiT gets positions [crop_start, L)
  std::vector<uint8_t> text_mask() const;  // mask[crop_start:], the attention mask handed to the DiT
};

// `max_length`: tokens kept after the template prefix (the config's text max_length).
// `image_token_counts` (image_edit only): one entry per source image, the number of vision tokens the
// image becomes (grid t*h*w / merge_size^2 of the Qwen2.5-VL image processor). As the official call, each
// image appends <|vision_start|>, that many <|image_pad|>, <|vision_end|>, then one <|im_end|> closes the
// turn; with images nothing is truncated or padded.
QwenPrompt encode_kandinsky_prompt(const BpeTokenizer& tokenizer, std::string_view prompt, PromptContent content,
                                   int max_length, const std::vector<int>& image_token_counts = {});

}  // namespace k5
