#include "pipelines/prompt_expansion.h"

#include <filesystem>

#include "core/error.h"
#include "pipelines/image_resize.h"

namespace k5 {
namespace {

// The official instruction texts, byte for byte (t2v_pipeline.py, t2i_pipeline.py and i2i_pipeline.py
// expand_prompt; text_embedders.py INSTRUCTION_I2V_EXPAND), "{prompt}" where the user's prompt goes. The
// indentation inside them is the official source's and reaches the model.
const char* const kT2vInstruction = R"instruction(You are a prompt beautifier that transforms short user video descriptions into rich, detailed English prompts specifically optimized for video generation models.
        Here are some example descriptions from the dataset that the model was trained:
        1. "In a dimly lit room with a cluttered background, papers are pinned to the wall and various objects rest on a desk. Three men stand present: one wearing a red sweater, another in a black sweater, and the third in a gray shirt. The man in the gray shirt speaks and makes hand gestures, while the other two men look forward. The camera remains stationary, focusing on the three men throughout the sequence. A gritty and realistic visual style prevails, marked by a greenish tint that contributes to a moody atmosphere. Low lighting casts shadows, enhancing the tense mood of the scene."
        2. "In an office setting, a man sits at a desk wearing a gray sweater and seated in a black office chair. A wooden cabinet with framed pictures stands beside him, alongside a small plant and a lit desk lamp. Engaged in a conversation, he makes various hand gestures to emphasize his points. His hands move in different positions, indicating different ideas or points. The camera remains stationary, focusing on the man throughout. Warm lighting creates a cozy atmosphere. The man appears to be explaining something. The overall visual style is professional and polished, suitable for a business or educational context."
        3. "A person works on a wooden object resembling a sunburst pattern, holding it in their left hand while using their right hand to insert a thin wire into the gaps between the wooden pieces. The background features a natural outdoor setting with greenery and a tree trunk visible. The camera stays focused on the hands and the wooden object throughout, capturing the detailed process of assembling the wooden structure. The person carefully threads the wire through the gaps, ensuring the wooden pieces are securely fastened together. The scene unfolds with a naturalistic and instructional style, emphasizing the craftsmanship and the methodical steps taken to complete the task."
        IImportantly! These are just examples from a large training dataset of 200 million videos.
        Rewrite Prompt: "{prompt}" to get high-quality video generation. Answer only with expanded prompt.)instruction";
const char* const kT2iInstruction = R"instruction(Rewrite and enhance the original prompt with richer detail, clearer structure, and improved descriptive quality. Expand the scene, atmosphere, and context while preserving the user’s intent. When adding text that should appear inside an image, place that text inside double quotes and in capital letters. Strengthen visual clarity, style, and specificity, but do not change the meaning. Output only the enhanced prompt, written in polished, vivid language suitable for high-quality image generation.
        example:
        Original text: white mini police car with blue stripes, with 911 and 'Police' text 
        Result: A miniature model car simulating the official transport of the relevant authorities. The body is white with blue stripes. The word "911" is written in large blue letters on the hood and side. Below it, "POLICE" is used in a font. The windows are transparent, and the interior has black seats. The headlights have plastic lenses, and the roof has blue and red beacons. The radiator grille has vertical slots. The wheels are black with white rims. The doors are closed, the windows have black frames. The background is uniform white.
        Here 911 in double quotes because it is text on image, 'Police' -> "POLICE" because it should be in double quotes and capital letters.
        Rewrite Prompt: "{prompt}". Answer only with expanded prompt.)instruction";
const char* const kI2vInstruction = R"instruction(You are a prompt beautifier that transforms short user video descriptions into rich, detailed English prompts specifically optimized for video generation models.
    Here are some example descriptions from the dataset that the model was trained:
    1. "Create a video showing a nighttime urban driving scene from inside a car. The driver is focused on the road ahead, with the city lights visible through the windshield. The GPS device on the dashboard continues to display navigation information. The camera remains steady, capturing the interior of the car and the changing street view outside as the vehicle moves forward. The background shifts slightly to show different parts of the cityscape, including illuminated buildings and street signs."
    2. "Create a video where the character, dressed in historical attire, is seen holding an umbrella with a logo. The character should move closer to the camera while maintaining a steady pace, keeping the umbrella raised. The background remains consistent with a foggy, outdoor setting, but the focus shifts more towards the character as they approach. The lighting should emphasize the details of the costume and the umbrella, enhancing the dramatic effect."
    3. "Darken the scene while keeping the characters and setting unchanged, emphasizing a serious atmosphere."
    IImportantly! These are just examples from a large training dataset of 20 mln videos.
    Rewrite Prompt: "{prompt}" to get high-quality image to video generation from this image. Pay main attention to information about changes of objects.
    Make prompt dynamic. Answer only with expanded prompt.)instruction";
const char* const kI2iInstruction = R"instruction(Rewrite and enhance the original editing instruction with richer detail, clearer structure, and improved descriptive quality. When adding text that should appear inside an image, place that text inside double quotes and in capital letters. Explain what needs to be changed and what needs to be left unchanged. Explain in details how to change  camera potision or tell that camera position shouldn't be changed.
example:
Original text: add text 911 and 'Police' 
Result: Add the word "911" in large blue letters to the hood. Below that, add the word "POLICE." Keep the camera position unchanged, as do the background, car position, and lighting.
Rewrite Prompt: "{prompt}". Answer only with expanded prompt.)instruction";

const char* instruction(ExpansionMode mode) {
  switch (mode) {
    case ExpansionMode::t2v: return kT2vInstruction;
    case ExpansionMode::t2i: return kT2iInstruction;
    case ExpansionMode::i2v: return kI2vInstruction;
    case ExpansionMode::i2i: return kI2iInstruction;
  }
  return "";
}

constexpr int kMaxNewTokens = 256;  // max_new_tokens of every official expansion

}  // namespace

ExpansionMode parse_expansion_mode(const std::string& name) {
  if (name == "t2v") return ExpansionMode::t2v;
  if (name == "t2i") return ExpansionMode::t2i;
  if (name == "i2v") return ExpansionMode::i2v;
  if (name == "i2i") return ExpansionMode::i2i;
  fail("unknown expansion mode '", name, "' (valid: t2v, t2i, i2v, i2i)");
}

bool expansion_takes_image(ExpansionMode mode) { return mode == ExpansionMode::i2v || mode == ExpansionMode::i2i; }

std::string expansion_instruction(ExpansionMode mode, std::string_view prompt) {
  std::string text = instruction(mode);
  const size_t at = text.find("{prompt}");
  text.replace(at, 8, prompt);
  return text;
}

GenerationConfig expansion_generation_config(const TextEncoderPaths& paths) {
  const std::filesystem::path file = std::filesystem::path(paths.qwen_dir) / "generation_config.json";
  K5_CHECK(std::filesystem::exists(file), paths.qwen_dir,
           ": no generation_config.json (prompt expansion follows the checkpoint's generation settings)");
  return GenerationConfig::from_json_file(file.string());
}

std::string expand_prompt(Context& ctx, const TextEncoders& encoders, const GenerationConfig& config,
                          ExpansionMode mode, std::string_view prompt, const Image* image, RngDevice rng,
                          uint64_t seed) {
  K5_CHECK(!prompt.empty(), "prompt expansion: the prompt is empty");
  K5_CHECK(expansion_takes_image(mode) == (image != nullptr), "prompt expansion: ",
           expansion_takes_image(mode) ? "this mode expands with its input image" : "this mode takes no image");
  K5_CHECK(encoders.qwen.has_lm_head(), "prompt expansion: the Qwen2.5-VL lm_head is not loaded");
  // I2V puts the image before the instruction; I2I after it, at a quarter of its size (PIL's resize).
  std::vector<ChatContent> content{ChatContent::of_text(expansion_instruction(mode, prompt))};
  std::optional<Image> quarter;
  if (mode == ExpansionMode::i2v) content.insert(content.begin(), ChatContent::image());
  if (mode == ExpansionMode::i2i) {
    content.push_back(ChatContent::image());
    quarter = resize_bicubic_pil(*image, std::max(1, image->height / 4), std::max(1, image->width / 4));
    image = &*quarter;
  }
  const std::string text = render_chat({{"user", content}});
  std::vector<int32_t> ids = encoders.qwen_tokenizer.encode(text);
  TorchMultinomial multinomial(rng, seed);
  const TokenSampler sampler = [&](std::span<const float> probs) { return multinomial.sample(probs); };
  std::vector<int32_t> new_ids;
  if (image) {
    const QwenImageFeatures features = qwen_image_features(ctx, encoders, *image);
    ids = expand_image_pads(ids, encoders.vision->tokens.image_pad, features.grids,
                            encoders.vision->processor.merge_size);
    const QwenMultimodalPrompt input = qwen_multimodal_prompt(encoders, ids, features);
    new_ids = generate(ctx, encoders.qwen, GenerationPrompt{ids, input.embeds, input.positions}, config, kMaxNewTokens,
                       sampler);
  } else {
    new_ids = generate(ctx, encoders.qwen, ids, config, kMaxNewTokens, sampler);
  }
  return decode_generated(encoders.qwen_tokenizer, new_ids);
}

}  // namespace k5
