// Qwen2.5-VL chat generation as the official Kandinsky 5 pipelines run it to expand a prompt:
// processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), model.generate(...,
// max_new_tokens=256) with the checkpoint's generation_config.json, then
// batch_decode(new ids, skip_special_tokens=True, clean_up_tokenization_spaces=False).
//
// `generate` follows transformers' `generate` (GenerationMixin._sample, batch 1): the logits of the last
// position go through the processors in transformers' order — repetition penalty over every id so far
// (prompt included), then, only when do_sample, temperature, top-k, top-p (min_tokens_to_keep 1) — and the
// next id is the argmax (first maximum, as torch.argmax) when do_sample is false or when a single candidate
// When the config samples, every step's id is drawn by the caller's TokenSampler from the softmax of the
// processed scores (torch.multinomial(probs, 1) in transformers: see TorchMultinomial in
// pipelines/torch_random.h), on every step, even when one candidate is left (Qwen2.5-VL-7B-Instruct's own
// config, top_k 1, where the draw always picks it but still advances torch's generator). Generation stops
// after an eos_token_id, which is kept in the returned ids (transformers returns it too), or after
// max_new_tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "models/bpe/bpe_tokenizer.h"
#include "models/qwen25vl/qwen_text_model.h"

namespace k5 {

// A generation_config.json; fields it lacks take transformers' defaults (do_sample false, temperature 1,
// top_k 50, top_p 1, repetition_penalty 1). top_k 0 disables top-k.
struct GenerationConfig {
  bool do_sample = false;
  double temperature = 1.0;
  int64_t top_k = 50;
  double top_p = 1.0;
  double repetition_penalty = 1.0;
  std::vector<int32_t> eos_token_ids;
  std::optional<int32_t> pad_token_id, bos_token_id;

  static GenerationConfig from_json_file(const std::string& path);
};

// The prompt of one generation. input_ids [L] are all the prompt's ids (image pad ids included: the
// repetition penalty sees them, as transformers' input_ids). input_embeds (F32 [L, hidden]) replaces
// embed(input_ids) when given (image features spliced in); position_ids ([3, L] row-major M-RoPE) default
// to text_positions(0, L). New tokens continue at max(position_ids) + 1 + step on all three rows (what
// transformers does with rope_deltas).
struct GenerationPrompt {
  std::vector<int32_t> input_ids;
  Tensor input_embeds;
  std::vector<int64_t> position_ids;
};

// Draws one id from a step's probabilities [vocab] (non-negative, summing to 1).
using TokenSampler = std::function<int64_t(std::span<const float> probs)>;

// Returns the new ids (without the prompt). The model must be loaded with its lm_head; a config that samples
// needs a sampler. A model on the GPU keeps its KV cache there; each step's logits row comes back to the host,
// where the processors and the sampler run.
std::vector<int32_t> generate(Context& ctx, const QwenTextModel& model, const GenerationPrompt& prompt,
                              const GenerationConfig& config, int64_t max_new_tokens, const TokenSampler& sampler = {});
std::vector<int32_t> generate(Context& ctx, const QwenTextModel& model, const std::vector<int32_t>& prompt_ids,
                              const GenerationConfig& config, int64_t max_new_tokens, const TokenSampler& sampler = {});

// The logits processors applied to one step's logits [vocab] in place (masked entries become -inf), given
// every id so far. Exposed for tests.
void process_logits(const GenerationConfig& config, const std::vector<int32_t>& ids_so_far, std::vector<float>& scores);

// One piece of a chat message: text, or an image placeholder (<|vision_start|><|image_pad|><|vision_end|>;
// the processor later repeats <|image_pad|> once per merged image patch).
struct ChatContent {
  enum class Kind { text, image };
  Kind kind = Kind::text;
  std::string text;
  static ChatContent of_text(std::string text) { return {Kind::text, std::move(text)}; }
  static ChatContent image() { return {Kind::image, {}}; }
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::vector<ChatContent> content;
};

// Qwen2.5-VL-7B-Instruct's chat_template.json rendered with add_generation_prompt=True (add_vision_id
// false): a default "You are a helpful assistant." system turn unless the first message is a system one,
// "<|im_start|>{role}\n{content}<|im_end|>\n" per message, then "<|im_start|>assistant\n".
std::string render_chat(const std::vector<ChatMessage>& messages);

// The official expansion text: new ids decoded with skip_special_tokens=True, clean_up_tokenization_spaces
// False (invalid UTF-8 from a cut byte sequence becomes U+FFFD, as the tokenizers library does).
std::string decode_generated(const BpeTokenizer& tokenizer, const std::vector<int32_t>& new_ids);

}  // namespace k5
