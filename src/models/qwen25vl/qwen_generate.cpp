#include "models/qwen25vl/qwen_generate.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <unordered_set>

#include "core/error.h"
#include "io/json_fields.h"

namespace k5 {

namespace {

constexpr float kMasked = -std::numeric_limits<float>::infinity();

// RepetitionPenaltyLogitsProcessor: every id seen so far is made less likely, negative scores multiplied,
// positive ones divided (in float32, as the float32 scores tensor computes it).
void repetition_penalty(float penalty, const std::vector<int32_t>& ids_so_far, std::vector<float>& scores) {
  std::unordered_set<int32_t> seen(ids_so_far.begin(), ids_so_far.end());
  for (const int32_t id : seen) {
    if (id < 0 || size_t(id) >= scores.size()) continue;
    float& s = scores[size_t(id)];
    s = s < 0 ? s * penalty : s / penalty;
  }
}

// TopKLogitsWarper: keeps the scores >= the k-th largest (ties with it survive).
void top_k(int64_t k, std::vector<float>& scores) {
  k = std::min<int64_t>(k, int64_t(scores.size()));
  std::vector<float> sorted = scores;
  std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
  const float threshold = sorted[size_t(k - 1)];
  for (float& s : scores)
    if (s < threshold) s = kMasked;
}

// softmax in float32: max, exp(x - max), sum, times 1 / sum (torch's order).
std::vector<float> softmax(const std::vector<float>& scores) {
  const float max = *std::max_element(scores.begin(), scores.end());
  std::vector<float> probs(scores.size());
  float sum = 0.0f;
  for (size_t i = 0; i < scores.size(); ++i) sum += probs[i] = std::exp(scores[i] - max);
  const float inverse = 1.0f / sum;
  for (float& p : probs) p *= inverse;
  return probs;
}

// TopPLogitsWarper: sorted ascending, the tokens whose cumulative probability is <= 1 - top_p are removed;
// the most likely token always stays.
void top_p(double p, std::vector<float>& scores) {
  std::vector<int32_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return scores[size_t(a)] < scores[size_t(b)]; });
  std::vector<float> sorted(scores.size());
  for (size_t i = 0; i < order.size(); ++i) sorted[i] = scores[size_t(order[i])];
  const std::vector<float> probs = softmax(sorted);
  const float limit = float(1.0 - p);
  float cumulative = 0.0f;
  for (size_t i = 0; i + 1 < order.size(); ++i) {
    cumulative += probs[i];
    if (cumulative <= limit) scores[size_t(order[i])] = kMasked;
  }
}

int32_t argmax(const std::vector<float>& scores) {
  return int32_t(std::max_element(scores.begin(), scores.end()) - scores.begin());  // first maximum
}

int32_t next_token(const GenerationConfig& config, const std::vector<float>& scores, const TokenSampler& sampler) {
  if (!config.do_sample) return argmax(scores);
  const std::vector<float> probs = softmax(scores);
  const int64_t id = sampler(probs);
  K5_CHECK(id >= 0 && id < int64_t(probs.size()), "generate: the sampler drew id ", id, " of ", probs.size());
  return int32_t(id);
}

}  // namespace

GenerationConfig GenerationConfig::from_json_file(const std::string& path) {
  const nlohmann::json json = read_json_file(path);
  const JsonFields fields(json, path);
  GenerationConfig config;
  config.do_sample = fields.boolean("do_sample", config.do_sample);
  config.temperature = fields.number("temperature", config.temperature);
  config.top_k = fields.integer("top_k", config.top_k);
  config.top_p = fields.number("top_p", config.top_p);
  config.repetition_penalty = fields.number("repetition_penalty", config.repetition_penalty);
  if (fields.has("eos_token_id")) {
    const nlohmann::json& eos = json.at("eos_token_id");
    if (eos.is_array()) {
      for (const int64_t id : fields.integers("eos_token_id")) config.eos_token_ids.push_back(int32_t(id));
    } else {
      config.eos_token_ids.push_back(int32_t(fields.integer("eos_token_id")));
    }
  }
  if (fields.has("pad_token_id")) config.pad_token_id = int32_t(fields.integer("pad_token_id"));
  if (fields.has("bos_token_id")) config.bos_token_id = int32_t(fields.integer("bos_token_id"));
  K5_CHECK(config.temperature > 0, path, ": temperature must be positive, found ", config.temperature);
  K5_CHECK(config.top_k >= 0, path, ": top_k must be >= 0, found ", config.top_k);
  K5_CHECK(config.top_p > 0 && config.top_p <= 1, path, ": top_p must be in (0, 1], found ", config.top_p);
  K5_CHECK(config.repetition_penalty > 0, path, ": repetition_penalty must be positive, found ",
           config.repetition_penalty);
  return config;
}

void process_logits(const GenerationConfig& config, const std::vector<int32_t>& ids_so_far,
                    std::vector<float>& scores) {
  if (config.repetition_penalty != 1.0) repetition_penalty(float(config.repetition_penalty), ids_so_far, scores);
  if (!config.do_sample) return;  // the warpers run only when sampling
  if (config.temperature != 1.0) {
    const float temperature = float(config.temperature);
    for (float& s : scores) s /= temperature;
  }
  if (config.top_k != 0) top_k(config.top_k, scores);
  if (config.top_p < 1.0) top_p(config.top_p, scores);
}

std::vector<int32_t> generate(Context& ctx, const QwenTextModel& model, const GenerationPrompt& prompt,
                              const GenerationConfig& config, int64_t max_new_tokens, const TokenSampler& sampler) {
  const int64_t L = int64_t(prompt.input_ids.size());
  K5_CHECK(L > 0, "generate: the prompt is empty");
  K5_CHECK(model.has_lm_head(), "generate: the Qwen model was loaded without lm_head");
  K5_CHECK(!config.do_sample || sampler, "generate: the generation config samples, but no sampler was given");
  const std::vector<int64_t> positions = prompt.position_ids.empty() ? text_positions(0, L) : prompt.position_ids;
  K5_CHECK(int64_t(positions.size()) == 3 * L, "generate: position_ids has ", positions.size(),
           " entries, expected [3, ", L, "]");
  const Tensor embeds = prompt.input_embeds.defined() ? prompt.input_embeds : model.embed(prompt.input_ids);
  K5_CHECK(embeds.dim() == 2 && embeds.size(0) == L, "generate: input_embeds is ", embeds.describe(), ", expected [", L,
           ", hidden]");
  const int64_t next_position = *std::max_element(positions.begin(), positions.end()) + 1;

  std::vector<int32_t> ids = prompt.input_ids, new_ids;
  QwenKvCache cache;
  Tensor hidden = model.forward_cached(ctx, embeds, positions, cache);
  for (int64_t step = 0; step < max_new_tokens; ++step) {
    const Tensor logits = model.logits(ctx, hidden.slice(0, hidden.size(0) - 1, hidden.size(0)));
    std::vector<float> scores(logits.data<float>(), logits.data<float>() + logits.numel());
    process_logits(config, ids, scores);
    const int32_t token = next_token(config, scores, sampler);
    ids.push_back(token);
    new_ids.push_back(token);
    if (std::find(config.eos_token_ids.begin(), config.eos_token_ids.end(), token) != config.eos_token_ids.end()) break;
    if (step + 1 == max_new_tokens) break;
    hidden = model.forward_cached(ctx, model.embed({token}), text_positions(next_position + step, 1), cache);
  }
  return new_ids;
}

std::vector<int32_t> generate(Context& ctx, const QwenTextModel& model, const std::vector<int32_t>& prompt_ids,
                              const GenerationConfig& config, int64_t max_new_tokens, const TokenSampler& sampler) {
  GenerationPrompt prompt;
  prompt.input_ids = prompt_ids;
  return generate(ctx, model, prompt, config, max_new_tokens, sampler);
}

std::string render_chat(const std::vector<ChatMessage>& messages) {
  std::string text;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& message = messages[i];
    if (i == 0 && message.role != "system") text += "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
    text += "<|im_start|>" + message.role + "\n";
    for (const ChatContent& content : message.content)
      text += content.kind == ChatContent::Kind::image ? "<|vision_start|><|image_pad|><|vision_end|>" : content.text;
    text += "<|im_end|>\n";
  }
  return text + "<|im_start|>assistant\n";
}

std::string decode_generated(const BpeTokenizer& tokenizer, const std::vector<int32_t>& new_ids) {
  return tokenizer.decode(new_ids, /*skip_special_tokens=*/true);
}

}  // namespace k5
