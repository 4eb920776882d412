#include "pipelines/text_conditioning.h"

#include <chrono>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "models/bpe/tokenizer_paths.h"
#include "pipelines/image_resize.h"

namespace k5 {

namespace {

namespace fs = std::filesystem;

// DIR/<component> or DIR/weights/<component>, the first holding a config.json.
std::string find_component(const std::string& model_dir, const char* component, const char* what) {
  K5_CHECK(fs::is_directory(model_dir), "model folder ", model_dir, " does not exist or is not a folder");
  const fs::path root(model_dir);
  const fs::path candidates[] = {root / component, root / "weights" / component};
  for (const auto& dir : candidates)
    if (fs::is_regular_file(dir / "config.json")) return dir.string();
  fail("no ", what, " text encoder in ", model_dir, "; looked for ", (candidates[0] / "config.json").string(), " and ",
       (candidates[1] / "config.json").string());
}

}  // namespace

TextEncoderPaths TextEncoderPaths::find(const std::string& model_dir) {
  TextEncoderPaths paths;
  paths.qwen_dir = find_component(model_dir, "text_encoder", "Qwen2.5-VL (text_encoder/)");
  paths.clip_dir = find_component(model_dir, "text_encoder2", "CLIP (text_encoder2/)");
  return paths;
}

TextEncoders TextEncoders::load(Context& ctx, const TextEncoderPaths& paths, std::optional<QwenWeights> qwen_weights,
                                bool with_vision, bool with_lm_head, Device device) {
  const auto start = std::chrono::steady_clock::now();
  // The tokenizers sit in the encoders' own folders in the official layout (find_* also accepts a folder
  // that is itself the tokenizer's).
  const std::string& qwen_tokenizer = paths.qwen_tokenizer_dir.empty() ? paths.qwen_dir : paths.qwen_tokenizer_dir;
  const std::string& clip_tokenizer = paths.clip_tokenizer_dir.empty() ? paths.clip_dir : paths.clip_tokenizer_dir;
  TextEncoders encoders{BpeTokenizer::load(find_qwen_tokenizer(qwen_tokenizer)),
                        QwenTextModel::load(ctx, paths.qwen_dir, "", qwen_weights, with_lm_head, device),
                        ClipTokenizer::load(find_clip_tokenizer(clip_tokenizer)),
                        ClipTextModel::load(ctx, paths.clip_dir, "", device), std::nullopt};
  if (with_vision) {
    // preprocessor_config.json sits with the weights (official layout) or the tokenizer (diffusers).
    std::string processor = (fs::path(paths.qwen_dir) / "preprocessor_config.json").string();
    if (!fs::exists(processor) && !paths.qwen_tokenizer_dir.empty())
      processor = (fs::path(paths.qwen_tokenizer_dir) / "preprocessor_config.json").string();
    K5_CHECK(fs::exists(processor), paths.qwen_dir, ": no preprocessor_config.json (the Qwen2.5-VL image processor)");
    const std::string config = (fs::path(paths.qwen_dir) / "config.json").string();
    encoders.vision =
        QwenVision{QwenVisionModel::load(ctx, paths.qwen_dir, config, std::nullopt, device),
                   QwenImageProcessorConfig::from_json_file(processor), QwenImageTokens::from_json_file(config)};
  }
  K5_CHECK(encoders.qwen_tokenizer.vocab_size() <= size_t(encoders.qwen.config().vocab_size), paths.qwen_dir,
           ": the tokenizer has ", encoders.qwen_tokenizer.vocab_size(), " ids but the model's vocab_size is ",
           encoders.qwen.config().vocab_size);
  ctx.log().info("text encoders loaded in ", seconds_since(start), " s (Qwen ",
                 encoders.qwen.config().num_hidden_layers, " layers, hidden ", encoders.qwen.config().hidden_size,
                 "; CLIP hidden ", encoders.clip.config().hidden_size, "; on ", device_name(device), ")");
  return encoders;
}

const std::string& default_negative_prompt(PromptContent content) {
  // t2v_pipeline.py / i2v_pipeline.py defaults; t2i_pipeline.py / i2i_pipeline.py default to "".
  static const std::string video =
      "Static, 2D cartoon, cartoon, 2d animation, paintings, images, worst quality, low quality, ugly, deformed, "
      "walking backwards";
  static const std::string image;
  return content == PromptContent::video || content == PromptContent::image2video ? video : image;
}

QwenImageFeatures qwen_image_features(Context& ctx, const TextEncoders& encoders, const Image& image) {
  K5_CHECK(encoders.vision, "text encoding: an image needs the Qwen2.5-VL vision tower (not loaded)");
  const QwenPixelInputs pixels = preprocess_qwen_images(encoders.vision->processor, {image});
  return {encoders.vision->model.forward(ctx, pixels.pixel_values, pixels.image_grid_thw), pixels.image_grid_thw};
}

QwenMultimodalPrompt qwen_multimodal_prompt(const TextEncoders& encoders, const std::vector<int32_t>& ids,
                                            const QwenImageFeatures& image) {
  K5_CHECK(encoders.vision, "text encoding: an image needs the Qwen2.5-VL vision tower (not loaded)");
  const QwenVision& vision = *encoders.vision;
  QwenMultimodalPrompt out{encoders.qwen.embed(ids), {}};
  int64_t next = 0;
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] == vision.tokens.image_pad) {
      K5_CHECK(next < image.tokens(), "text encoding: more image tokens than image features");
      out.embeds.select(0, int64_t(i)).copy_from(image.features.select(0, next++));
    }
  K5_CHECK(next == image.tokens(), "text encoding: ", image.tokens(), " image features for ", next, " image tokens");
  out.positions = qwen_mrope_positions(ids, vision.tokens.image_pad, image.grids, vision.processor.merge_size);
  return out;
}

PromptEmbedding encode_prompt(Context& ctx, const TextEncoders& encoders, std::string_view prompt,
                              PromptContent content, int max_length, const Image* source_image) {
  if (max_length <= 0) max_length = kandinsky_default_max_length(content);
  const auto start = std::chrono::steady_clock::now();

  PromptEmbedding out;
  QwenPrompt tokens;
  Tensor hidden;
  if (source_image) {
    K5_CHECK(content == PromptContent::image_edit, "text encoding: a source image goes with the image_edit template");
    // text_embedders.py: F.resize(image, (h // 2, w // 2)), then the processor and the vision tower.
    const Image half = resize_bilinear_antialias(*source_image, source_image->height / 2, source_image->width / 2);
    const QwenImageFeatures image = qwen_image_features(ctx, encoders, half);
    tokens = encode_kandinsky_prompt(encoders.qwen_tokenizer, prompt, content, max_length, {int(image.tokens())});
    const QwenMultimodalPrompt input = qwen_multimodal_prompt(encoders, tokens.ids, image);
    QwenKvCache cache;
    hidden = encoders.qwen.forward_cached(ctx, input.embeds, input.positions, cache);
  } else {
    // Qwen: all max_length + crop_start ids, no mask (see the header), then drop the template prefix.
    tokens = encode_kandinsky_prompt(encoders.qwen_tokenizer, prompt, content, max_length);
  }
  const int64_t total = int64_t(tokens.ids.size());
  K5_CHECK(total > tokens.crop_start, "text encoding: the ", prompt_content_name(content), " prompt gives ", total,
           " tokens, not more than the ", tokens.crop_start, " template tokens the official code drops");
  if (!hidden.defined()) hidden = encoders.qwen.forward(ctx, tokens.ids);  // [total, D]
  out.text_embed = hidden.slice(0, tokens.crop_start, total).clone();      // [L, D]
  const std::vector<uint8_t> text_mask = tokens.text_mask();
  out.attention_mask = Tensor::empty(DType::U8, {1, int64_t(text_mask.size())});
  std::memcpy(out.attention_mask.raw(), text_mask.data(), text_mask.size());

  // CLIP: the raw prompt, 77 tokens with padding; the pooled state never sees the padding (causal).
  const ClipTokenizer::Encoding clip_tokens = encoders.clip_tokenizer.encode_padded(prompt, 77);
  const ClipTextOutput clip = encoders.clip.forward(ctx, clip_tokens.ids, clip_tokens.mask);
  out.pooled_text_embed = clip.pooler_output.contiguous().reshape({1, clip.pooler_output.numel()});

  int64_t real = 0;
  for (const uint8_t m : text_mask) real += m;
  ctx.log().debug("encoded a ", prompt_content_name(content), " prompt: ", real, " of ", text_mask.size(),
                  " text tokens real, ", seconds_since(start), " s");
  return out;
}

TextConditioning encode_text_conditioning(Context& ctx, const TextEncoders& encoders, std::string_view prompt,
                                          std::string_view negative_prompt, PromptContent content, int max_length,
                                          const Image* source_image) {
  K5_CHECK(!prompt.empty(), "text encoding: the prompt is empty");
  return {encode_prompt(ctx, encoders, prompt, content, max_length, source_image),
          encode_prompt(ctx, encoders, negative_prompt, content, max_length, source_image)};
}

std::vector<std::pair<std::string, Tensor>> sample_inputs(const TextConditioning& conditioning) {
  return {{"text_embed", conditioning.prompt.text_embed},
          {"pooled_text_embed", conditioning.prompt.pooled_text_embed},
          {"attention_mask", conditioning.prompt.attention_mask},
          {"null_text_embed", conditioning.negative.text_embed},
          {"null_pooled_text_embed", conditioning.negative.pooled_text_embed},
          {"null_attention_mask", conditioning.negative.attention_mask}};
}

}  // namespace k5
