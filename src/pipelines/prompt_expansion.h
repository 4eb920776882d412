// Prompt expansion, on by default in every official pipeline: Qwen2.5-VL-7B-Instruct rewrites the user's
// prompt from a fixed instruction per mode (t2v_pipeline.py / t2i_pipeline.py / i2i_pipeline.py
// expand_prompt, text_embedders.py expand_text_prompt): one user chat turn rendered with the generation
// prompt, the input image inside it for I2V (before the text, full size) and I2I (after it, quarter size),
// 256 new tokens at most with the checkpoint's generation_config.json, decoded without special tokens.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/context.h"
#include "io/image_file.h"
#include "models/qwen25vl/qwen_generate.h"
#include "pipelines/text_conditioning.h"
#include "pipelines/torch_random.h"

namespace k5 {

enum class ExpansionMode { t2v, t2i, i2v, i2i };
ExpansionMode parse_expansion_mode(const std::string& name);  // "t2v" | "t2i" | "i2v" | "i2i"
bool expansion_takes_image(ExpansionMode mode);              // i2v, i2i

// The official instruction with the prompt in place.
std::string expansion_instruction(ExpansionMode mode, std::string_view prompt);

// generation_config.json of the Qwen2.5-VL folder.
GenerationConfig expansion_generation_config(const TextEncoderPaths& paths);

// The expanded prompt. `encoders` loaded with the lm_head (and the vision tower when the mode takes an
// image); `image` for i2v / i2i only. A sampling config draws from torch's generator on `rng` seeded with
// `seed`, as transformers.set_seed(seed) precedes the official call (the official code samples on the GPU:
// cuda). With the released config (top_k 1) every draw picks the most likely token.
std::string expand_prompt(Context& ctx, const TextEncoders& encoders, const GenerationConfig& config,
                          ExpansionMode mode, std::string_view prompt, const Image* image, RngDevice rng,
                          uint64_t seed);

}  // namespace k5
