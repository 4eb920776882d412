// The text-conditioning step of the Kandinsky 5 pipelines (official kandinsky/models/text_embedders.py,
// Kandinsky5TextEmbedder.encode, as generation_utils.py calls it for the prompt and the negative prompt):
//
//   Qwen2.5-VL: the templated prompt is tokenised to max_length + crop_start tokens (truncated, right-padded
//     with <|endoftext|>), the language model runs on input_ids alone (no attention mask: the official
//     non-edit path passes none; causal attention keeps real tokens' states the same either way, and the
//     padded positions get the states of pad tokens that see the whole prompt), and hidden_states[-1] from
//     crop_start on is the text embedding.
//   Packing: the official default (text_token_padding=True in every utils.get_*_pipeline) keeps the padded
//     length: text_embeds [max_length, D] with the cropped attention mask [1, max_length] (1 = real token),
//     and text RoPE positions arange(max_length). That is what is returned here: `text_embed` holds every
//     position, padded ones included, and `attention_mask` marks the real ones. (The official
//     text_token_padding=False branch, which would pack the real tokens only, is unusable: encode() calls
//     attention_mask.to(...) on the None it returns.)
//   CLIP: pooler_output of the raw prompt (not templated), max_length 77, truncation, padding to 77.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/context.h"
#include "core/tensor.h"
#include "io/image_file.h"
#include "models/bpe/bpe_tokenizer.h"
#include "models/bpe/clip_tokenizer.h"
#include "models/bpe/kandinsky_prompt.h"
#include "models/clip/clip_text_model.h"
#include "models/qwen25vl/image_processor.h"
#include "models/qwen25vl/qwen_text_model.h"
#include "models/qwen25vl/vision_model.h"

namespace k5 {

// Where a model folder keeps its text encoders: DIR/text_encoder (Qwen2.5-VL) and DIR/text_encoder2 (CLIP),
// or the same under DIR/weights/ (the official download layout). Each folder holds config.json, the
// safetensors weights (one file, shards or an index) and the tokenizer. Throws a one-line k5::Error naming
// every place looked at when a folder is missing.
struct TextEncoderPaths {
  std::string qwen_dir;
  std::string clip_dir;
  // The tokenizers' folders when they are not the encoders' own (diffusers: tokenizer/, tokenizer_2/).
  std::string qwen_tokenizer_dir;
  std::string clip_tokenizer_dir;
  static TextEncoderPaths find(const std::string& model_dir);
};

// Qwen2.5-VL's vision side, for image_edit prompts that carry the source image.
struct QwenVision {
  QwenVisionModel model;
  QwenImageProcessorConfig processor;  // preprocessor_config.json
  QwenImageTokens tokens;              // <|image_pad|> etc. from config.json
};

// Both text encoders with their tokenizers, loaded once (k5 generate reuses them for both prompts).
struct TextEncoders {
  BpeTokenizer qwen_tokenizer;
  QwenTextModel qwen;
  ClipTokenizer clip_tokenizer;
  ClipTextModel clip;
  std::optional<QwenVision> vision;  // loaded with `with_vision`

  // `qwen_weights`: empty = from the context precision (fp32 -> f32, bf16 -> bf16), or int8 weight-only.
  // `with_vision`: also the vision tower and image processor (image editing with its source
  // image); `with_lm_head`: also lm_head (prompt expansion generates text). `device`: where the Qwen2.5-VL
  // language model, CLIP and the vision tower run (the image processor runs on the CPU). Everything the encode
  // functions return is on the host.
  static TextEncoders load(Context& ctx, const TextEncoderPaths& paths,
                           std::optional<QwenWeights> qwen_weights = std::nullopt, bool with_vision = false,
                           bool with_lm_head = false, Device device = Device::CPU);
};

// One prompt's conditioning, as the DiT takes it (k5 forward dit / sample inputs): host tensors, whichever
// device the encoders run on.
struct PromptEmbedding {
  Tensor text_embed;         // F32 [L, qwen hidden]: hidden_states[-1][crop_start:], L = max_length
  Tensor pooled_text_embed;  // F32 [1, clip hidden]: CLIP pooler_output
  Tensor attention_mask;     // U8 [1, L]: 1 = real token, 0 = padding
};

struct TextConditioning {
  PromptEmbedding prompt;
  PromptEmbedding negative;  // the null_* inputs of classifier-free guidance
};

// One image through the Qwen2.5-VL image processor and vision tower (needs encoders.vision): its features
// [tokens, hidden] and grid, and the prompt inputs with them: `ids` must already hold one <|image_pad|> per
// feature row (expand_image_pads); returns the embeddings with the features in place of the pads, in order,
// and the M-RoPE positions [3, L].
struct QwenImageFeatures {
  Tensor features;
  std::vector<QwenGridTHW> grids;
  int64_t tokens() const { return features.size(0); }
};
QwenImageFeatures qwen_image_features(Context& ctx, const TextEncoders& encoders, const Image& image);
struct QwenMultimodalPrompt {
  Tensor embeds;
  std::vector<int64_t> positions;
};
QwenMultimodalPrompt qwen_multimodal_prompt(const TextEncoders& encoders, const std::vector<int32_t>& ids,
                                            const QwenImageFeatures& image);

// The official pipelines' default negative prompts: the t2v/i2v one for video and image2video, "" for
// images (t2i / i2i).
const std::string& default_negative_prompt(PromptContent content);

// `max_length`: tokens kept after the template prefix; <= 0 = the official default for the content
// (256 video, 512 images). An empty `prompt` is refused (the negative prompt may be empty).
// `source_image` (image_edit only; needs encoders.vision): as the official embedder, the image at half
// size goes through Qwen2.5-VL's image processor and vision tower, its tokens follow the prompt, and the
// sequence is neither truncated nor padded (L = its length minus crop_start, mask all ones).
PromptEmbedding encode_prompt(Context& ctx, const TextEncoders& encoders, std::string_view prompt,
                              PromptContent content, int max_length = 0, const Image* source_image = nullptr);
TextConditioning encode_text_conditioning(Context& ctx, const TextEncoders& encoders, std::string_view prompt,
                                          std::string_view negative_prompt, PromptContent content, int max_length = 0,
                                          const Image* source_image = nullptr);

// The tensors under the names `k5 forward sample` reads: text_embed, pooled_text_embed, attention_mask and
// their null_ versions.
std::vector<std::pair<std::string, Tensor>> sample_inputs(const TextConditioning& conditioning);

}  // namespace k5
