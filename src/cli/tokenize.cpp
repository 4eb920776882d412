// `k5 tokenize --model-dir DIR --encoder qwen|clip [--template T] [--pad] TEXT`: the token ids k5 feeds the
// text encoders, printed as a JSON array (and, with --pad, the attention mask as a second JSON array).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/error.h"
#include "models/bpe/bpe_tokenizer.h"
#include "models/bpe/clip_tokenizer.h"
#include "models/bpe/kandinsky_prompt.h"
#include "models/bpe/tokenizer_paths.h"

namespace {

struct TokenizeOptions {
  std::string model_dir;
  std::string encoder;
  std::string content;
  std::string text;
  int max_length = 0;
  bool pad = false;
};

template <typename T>
void print_array(const std::vector<T>& values) {
  std::string line = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) line += ",";
    line += std::to_string(int64_t(values[i]));
  }
  line += "]\n";
  std::fputs(line.c_str(), stdout);
}

int run_tokenize(const TokenizeOptions& options) {
  if (options.encoder == "clip") {
    K5_CHECK(options.content.empty(), "--template applies to the qwen encoder only");
    const k5::ClipTokenizer tokenizer = k5::ClipTokenizer::load(k5::find_clip_tokenizer(options.model_dir));
    if (!options.pad) {
      print_array(tokenizer.encode(options.text));
      return 0;
    }
    const auto encoding = tokenizer.encode_padded(options.text, options.max_length > 0 ? options.max_length : 77);
    print_array(encoding.ids);
    print_array(encoding.mask);
    return 0;
  }
  const k5::BpeTokenizer tokenizer = k5::BpeTokenizer::load(k5::find_qwen_tokenizer(options.model_dir));
  if (options.content.empty()) {
    K5_CHECK(!options.pad, "--pad with the qwen encoder needs --template (the padding is the Kandinsky call's)");
    print_array(tokenizer.encode(options.text));
    return 0;
  }
  const k5::PromptContent content = k5::parse_prompt_content(options.content);
  const int max_length = options.max_length > 0 ? options.max_length : k5::kandinsky_default_max_length(content);
  k5::QwenPrompt prompt = k5::encode_kandinsky_prompt(tokenizer, options.text, content, max_length);
  if (!options.pad) {
    // Without --pad: only the real tokens.
    size_t real = 0;
    while (real < prompt.mask.size() && prompt.mask[real]) ++real;
    prompt.ids.resize(real);
    print_array(prompt.ids);
    return 0;
  }
  print_array(prompt.ids);
  print_array(prompt.mask);
  return 0;
}

K5_COMMAND("tokenize", "print the token ids of a prompt for the Qwen2.5-VL or CLIP text encoder", [](CLI::App& app) {
  auto options = std::make_shared<TokenizeOptions>();
  app.add_option("--model-dir", options->model_dir,
                 "model folder (text_encoder/ = Qwen, text_encoder2/ = CLIP) or a tokenizer folder / tokenizer.json")
      ->required();
  app.add_option("--encoder", options->encoder, "qwen or clip")->required()->check(CLI::IsMember({"qwen", "clip"}));
  app.add_option("--template", options->content,
                 "qwen: wrap the prompt in the Kandinsky template (video, image, image_edit, image2video); the ids "
                 "include the template prefix of crop_start tokens")
      ->check(CLI::IsMember({"video", "image", "image_edit", "image2video"}));
  app.add_flag("--pad", options->pad,
               "pad as the official embedder (clip: BOS/EOS, 77 tokens; qwen: needs --template) and print the mask "
               "as a second line");
  app.add_option("--max-length", options->max_length,
                 "clip: padded length (default 77); qwen: tokens after the template (default 256 video, 512 image)");
  app.add_option("text", options->text, "the prompt")->required();
  return [options]() -> int { return run_tokenize(*options); };
});

}  // namespace
