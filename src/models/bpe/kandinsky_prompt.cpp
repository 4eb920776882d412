#include "models/bpe/kandinsky_prompt.h"

#include "core/error.h"

namespace k5 {

namespace {

// The official template strings, line by line (joined with "\n"), reproduced byte for byte including the
// upstream spellings ("promt", "scren").
const std::vector<std::string>& template_lines(PromptContent content) {
  static const std::vector<std::string> video = {
      "<|im_start|>system\nYou are a promt engineer. Describe the video in detail.",
      "Describe how the camera moves or shakes, describe the zoom and view angle, whether it follows the objects.",
      "Describe the location of the video, main characters or objects and their action.",
      "Describe the dynamism of the video and presented actions.",
      "Name the visual style of the video: whether it is a professional footage, user generated content, some kind of "
      "animation, video game or scren content.",
      "Describe the visual effects, postprocessing and transitions if they are presented in the video.",
      "Pay attention to the order of key actions shown in the scene.<|im_end|>",
      "<|im_start|>user\n{}<|im_end|>",
  };
  static const std::vector<std::string> image2video = {
      "<|im_start|>system\nYou are a promt engineer. Your task is to create a highly detailed and effective video "
      "description based on a provided input image.",
      "Describe how the camera moves or shakes, describe the zoom and view angle, whether it follows the objects.",
      "Describe main characters actions.",
      "Describe the dynamism of the video and presented actions.",
      "Name the visual style of the video: whether it is a professional footage, user generated content, some kind of "
      "animation, video game or scren content.",
      "Describe the visual effects, postprocessing and transitions if they are presented in the video.",
      "Pay attention to the order of key actions shown in the scene.<|im_end|>",
      "<|im_start|>user\n{}<|im_end|>",
  };
  static const std::vector<std::string> image = {
      "<|im_start|>system\nYou are a promt engineer. Describe the image by detailing the color, shape, size, texture, "
      "quantity, text, spatial relationships of the objects and background:<|im_end|>",
      "<|im_start|>user\n{}<|im_end|>",
  };
  static const std::vector<std::string> image_edit = {
      "<|im_start|>system\nYou are a promt engineer. Based on the provided source image (first image) and target "
      "image (second image), create an interesting text prompt that can be used together with the source image to "
      "create the target image:<|im_end|>",
      "<|im_start|>user\n{}",
  };
  switch (content) {
    case PromptContent::video:
      return video;
    case PromptContent::image:
      return image;
    case PromptContent::image_edit:
      return image_edit;
    case PromptContent::image2video:
      return image2video;
  }
  fail("unknown prompt content");
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) out.push_back('\n');
    out += lines[i];
  }
  return out;
}

}  // namespace

PromptContent parse_prompt_content(std::string_view name) {
  if (name == "video") return PromptContent::video;
  if (name == "image") return PromptContent::image;
  if (name == "image_edit") return PromptContent::image_edit;
  if (name == "image2video") return PromptContent::image2video;
  fail("unknown prompt template '", name, "' (expected video, image, image_edit or image2video)");
}

const char* prompt_content_name(PromptContent content) {
  switch (content) {
    case PromptContent::video:
      return "video";
    case PromptContent::image:
      return "image";
    case PromptContent::image_edit:
      return "image_edit";
    case PromptContent::image2video:
      return "image2video";
  }
  return "?";
}

const std::string& kandinsky_prompt_template(PromptContent content) {
  static const std::string video = join_lines(template_lines(PromptContent::video));
  static const std::string image = join_lines(template_lines(PromptContent::image));
  static const std::string image_edit = join_lines(template_lines(PromptContent::image_edit));
  static const std::string image2video = join_lines(template_lines(PromptContent::image2video));
  switch (content) {
    case PromptContent::video:
      return video;
    case PromptContent::image:
      return image;
    case PromptContent::image_edit:
      return image_edit;
    case PromptContent::image2video:
      return image2video;
  }
  fail("unknown prompt content");
}

int kandinsky_crop_start(PromptContent content) {
  switch (content) {
    case PromptContent::video:
      return 129;
    case PromptContent::image:
      return 41;
    case PromptContent::image_edit:
      return 55;
    case PromptContent::image2video:
      return 132;
  }
  fail("unknown prompt content");
}

int kandinsky_default_max_length(PromptContent content) {
  return content == PromptContent::video || content == PromptContent::image2video ? 256 : 512;
}

std::vector<uint8_t> QwenPrompt::text_mask() const {
  if (size_t(crop_start) >= mask.size()) return {};
  return std::vector<uint8_t>(mask.begin() + crop_start, mask.end());
}

QwenPrompt encode_kandinsky_prompt(const BpeTokenizer& tokenizer, std::string_view prompt, PromptContent content,
                                   int max_length, const std::vector<int>& image_token_counts) {
  K5_CHECK(image_token_counts.empty() || content == PromptContent::image_edit,
           "Kandinsky prompt: images are only inserted into the image_edit template, not ",
           prompt_content_name(content));
  K5_CHECK(max_length > 0, "Kandinsky prompt: max_length must be positive, got ", max_length);
  const std::string& text_template = kandinsky_prompt_template(content);
  const size_t slot = text_template.find("{}");
  std::string full_text = text_template.substr(0, slot);
  full_text.append(prompt);
  full_text.append(text_template.substr(slot + 2));

  QwenPrompt out;
  out.crop_start = kandinsky_crop_start(content);
  if (!image_token_counts.empty()) {
    auto special = [&](const char* token) {
      const auto id = tokenizer.token_id(token);
      K5_CHECK(id.has_value(), tokenizer.source(), ": no ", token, " token for the image_edit prompt");
      return *id;
    };
    const int32_t vision_start = special("<|vision_start|>"), image_pad = special("<|image_pad|>"),
                  vision_end = special("<|vision_end|>"), im_end = special("<|im_end|>");
    out.ids = tokenizer.encode(full_text);
    for (const int count : image_token_counts) {
      K5_CHECK(count > 0, "Kandinsky prompt: an image must give at least one vision token, got ", count);
      out.ids.push_back(vision_start);
      out.ids.insert(out.ids.end(), size_t(count), image_pad);
      out.ids.push_back(vision_end);
    }
    out.ids.push_back(im_end);
    out.mask.assign(out.ids.size(), 1);
    return out;
  }
  const size_t total = size_t(max_length) + size_t(out.crop_start);
  out.ids = tokenizer.encode(full_text);
  if (out.ids.size() > total) out.ids.resize(total);  // truncation keeps the start (right side cut)
  out.mask.assign(out.ids.size(), 1);
  if (content != PromptContent::image_edit) {
    const auto pad = tokenizer.token_id("<|endoftext|>");
    K5_CHECK(pad.has_value(), tokenizer.source(), ": no <|endoftext|> token to pad the Kandinsky prompt with");
    out.ids.resize(total, *pad);
    out.mask.resize(total, 0);
  }
  return out;
}

}  // namespace k5
