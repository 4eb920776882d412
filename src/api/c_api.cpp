// The C API (include/k5/k5.h) over the generation pipeline, as `k5 generate` runs it: exceptions become status
// codes and a one-line message per thread.
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <random>
#include <string>
#include <utility>

#include "core/context.h"
#include "core/error.h"
#include "k5/k5.h"
#include "pipelines/generation.h"
#include "pipelines/generation_output.h"
#include "pipelines/model_files.h"

struct k5_model {
  k5_model(k5::ModelFiles model_files, const k5::ContextOptions& options, k5::Int8Weights int8, k5::KeepModels keep)
      : files(std::move(model_files)), context(options), int8_weights(int8), models(keep) {}
  k5::ModelFiles files;
  k5::Context context;  // kept between generations: its thread pool and workspaces
  k5::Int8Weights int8_weights;
  k5::ModelCache models;
};

namespace {

thread_local std::string last_error;

struct Cancelled {};  // thrown from the pipeline's observer when the progress callback asks to stop

// Never throws: no exception may cross into the C caller.
k5_status failed(k5_status status, const char* message) noexcept {
  try {
    last_error = message;
  } catch (...) {
    last_error.clear();  // no memory for the message: k5_last_error() says nothing rather than fail
  }
  return status;
}

template <typename Body>
k5_status guarded(Body&& body) noexcept {
  last_error.clear();
  try {
    body();
    return K5_OK;
  } catch (const Cancelled&) {
    return failed(K5_CANCELLED, "cancelled by the progress callback; nothing was written");
  } catch (const std::bad_alloc&) {
    return failed(K5_ERROR, "out of memory");
  } catch (const std::exception& error) {
    return failed(K5_ERROR, error.what());
  } catch (...) {
    return failed(K5_ERROR, "unknown error");
  }
}

std::string text_or(const char* text, const char* fallback) { return text ? text : fallback; }

char* copied(const std::string& text) {
  char* copy = static_cast<char*>(std::malloc(text.size() + 1));
  if (!copy) throw std::bad_alloc();
  std::memcpy(copy, text.c_str(), text.size() + 1);
  return copy;
}

k5::GenerationRequest generation_request(const k5_request& in, const k5::Int8Weights& int8_weights) {
  k5::GenerationRequest r;
  r.prompt = in.prompt;
  if (in.negative_prompt) r.negative_prompt = std::string(in.negative_prompt);
  r.width = in.width;
  r.height = in.height;
  r.frames = in.frames;
  r.steps = in.steps;
  if (in.cfg_scale >= 0) r.guidance = in.cfg_scale;
  if (in.scheduler_scale >= 0) r.scheduler_scale = in.scheduler_scale;
  r.seed = in.seed >= 0 ? uint64_t(in.seed) : uint64_t(std::random_device{}());  // as `k5 generate`
  r.rng = k5::parse_rng_device(text_or(in.rng, "cuda"));
  r.init_image = text_or(in.init_image, "");
  r.expand_prompt = in.expand_prompt != 0;
  r.magcache = in.magcache != 0;
  for (size_t i = 0; i < in.lora_count; ++i) r.loras.emplace_back(in.loras[i]);
  r.int8_weights = int8_weights;
  return r;
}

}  // namespace

extern "C" {

const char* k5_last_error(void) noexcept { return last_error.c_str(); }

const char* k5_version(void) noexcept { return K5_VERSION; }

void k5_model_options_init(k5_model_options* options) noexcept {
  if (options) *options = k5_model_options{};
}

k5_status k5_model_open(const k5_model_options* options, k5_model** model) noexcept {
  if (!options || !model || !options->model) {
    if (model) *model = nullptr;
    return failed(K5_INVALID_ARGUMENT, "k5_model_open: options, options->model and model must not be NULL");
  }
  *model = nullptr;
  return guarded([&] {
    k5::ContextOptions context;
    K5_CHECK(options->threads >= 0, "threads must be 0 (one per core) or more, got ", options->threads);
    context.threads = options->threads;
    context.device = k5::parse_device(text_or(options->device, "auto"));
    context.precision = k5::parse_precision(text_or(options->precision, "bf16"));
    context.log_level = options->verbose ? k5::LogLevel::info : k5::LogLevel::quiet;
    const k5::Int8Weights int8_weights = k5::parse_int8_weights({text_or(options->weights_int8, "none")});
    const k5::KeepModels keep_models = k5::parse_keep_models(text_or(options->keep_models, "auto"));
    k5::ModelOverrides overrides;
    overrides.config = text_or(options->config, "");
    k5::ModelFiles files = k5::find_model_files(options->model, overrides);
    *model = new k5_model(std::move(files), context, int8_weights, keep_models);
  });
}

void k5_model_close(k5_model* model) noexcept { delete model; }

void k5_model_unload(k5_model* model) noexcept {
  if (model) model->models.clear();
}

void k5_request_init(k5_request* request) noexcept {
  if (!request) return;
  *request = k5_request{};
  request->cfg_scale = -1;
  request->scheduler_scale = -1;
  request->seed = -1;
  request->expand_prompt = 1;
}

k5_status k5_generate(k5_model* model, const k5_request* request, k5_result* result) noexcept {
  if (result) *result = k5_result{};
  if (!model || !request || !result || !request->prompt)
    return failed(K5_INVALID_ARGUMENT, "k5_generate: model, request, request->prompt and result must not be NULL");
  if (request->lora_count > 0 && !request->loras)
    return failed(K5_INVALID_ARGUMENT, "k5_generate: request->loras is NULL with lora_count > 0");
  for (size_t i = 0; i < request->lora_count; ++i)
    if (!request->loras[i]) return failed(K5_INVALID_ARGUMENT, "k5_generate: request->loras holds a NULL");
  return guarded([&] {
    const k5::GenerationPlan plan =
        k5::plan_generation(model->files.config, generation_request(*request, model->int8_weights));
    const std::string output = text_or(request->output, "");
    if (!output.empty()) k5::check_output_path(output, plan.is_video());
    model->context.use_on_this_thread();
    k5::GenerationResult generated;
    try {
      generated =
          k5::generate(model->context, model->files, plan, model->models, [request](const k5::GenerationEvent& event) {
            if (request->progress &&
                request->progress(event.stage.c_str(), event.done, event.total, request->user_data))
              throw Cancelled();
          });
    } catch (const Cancelled&) {
      throw;
    } catch (...) {
      model->models.clear();  // out of memory beside kept models, say: the next call starts afresh
      throw;
    }
    k5_result out{};
    out.width = generated.frames.front().width;
    out.height = generated.frames.front().height;
    out.frames = int(generated.frames.size());
    out.seed = int64_t(plan.seed);
    const size_t frame_bytes = size_t(out.width) * size_t(out.height) * 3;
    for (const k5::Image& frame : generated.frames)
      K5_CHECK(frame.rgb.size() == frame_bytes, "frames of different sizes");
    try {
      out.rgb = static_cast<uint8_t*>(std::malloc(frame_bytes * generated.frames.size()));
      if (!out.rgb) throw std::bad_alloc();
      for (size_t f = 0; f < generated.frames.size(); ++f)
        std::memcpy(out.rgb + f * frame_bytes, generated.frames[f].rgb.data(), frame_bytes);
      if (!generated.expanded_prompt.empty()) out.expanded_prompt = copied(generated.expanded_prompt);
      // Last: a call that fails leaves no file. CRF 5 (the official writer's) and quality 95, `k5 generate`'s.
      if (!output.empty())
        k5::write_generation(output, plan, model->files, model->context.precision(), generated, 5, 95);
    } catch (...) {
      k5_result_free(&out);
      throw;
    }
    *result = out;
  });
}

void k5_result_free(k5_result* result) noexcept {
  if (!result) return;
  std::free(result->rgb);
  std::free(result->expanded_prompt);
  *result = k5_result{};
}

}  // extern "C"
