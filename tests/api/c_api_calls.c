/* include/k5/k5.h used from C (this file is compiled as C): the calls c_api_test.cpp checks. Each returns NULL
 * when every check passed, else what failed. */
#include <stdio.h>
#include <string.h>

#include "k5/k5.h"

typedef struct progress_count {
  int events;
  int denoise_steps;
  int stop_at_first_step;
  int loads;
} progress_count;

static int count_progress(const char* stage, int done, int total, void* user_data) {
  progress_count* count = (progress_count*)user_data;
  (void)total;
  count->events++;
  if (strcmp(stage, "denoise") == 0 && done > 0) count->denoise_steps++;
  if (strcmp(stage, "load") == 0 && done == 0) count->loads++;
  return count->stop_at_first_step && count->denoise_steps > 0;
}

static k5_status open_tiny(const char* model_dir, const char* config, k5_model** model) {
  k5_model_options options;
  k5_model_options_init(&options);
  options.model = model_dir;
  options.config = config;
  options.device = "cpu";
  options.threads = 2;
  return k5_model_open(&options, model);
}

/* The same generation again on `model`: the same pixels as `first`, with models loaded (`loads`) or none? NULL when
 * so. */
static const char* same_again(k5_model* model, k5_request request, const k5_result* first, int loads) {
  k5_result again;
  progress_count count = {0, 0, 0, 0};
  request.output = NULL;
  request.user_data = &count;
  if (k5_generate(model, &request, &again) != K5_OK) return k5_last_error();
  if ((count.loads > 0) != loads) {
    k5_result_free(&again);
    return loads ? "no model loaded after k5_model_unload" : "a kept model loaded again";
  }
  const size_t bytes = (size_t)first->width * (size_t)first->height * 3 * (size_t)first->frames;
  const int same = again.width == first->width && again.height == first->height && again.frames == first->frames &&
                   memcmp(again.rgb, first->rgb, bytes) == 0;
  k5_result_free(&again);
  return same ? NULL : "another generation with the same settings differs";
}

/* A 128x128 image in 2 steps, written to `output` too; then again with the models kept loaded, and after
 * k5_model_unload. */
const char* c_api_generates_an_image(const char* model_dir, const char* output) {
  k5_model* model = NULL;
  if (open_tiny(model_dir, "k5_tiny_t2i", &model) != K5_OK) return k5_last_error();
  k5_request request;
  k5_request_init(&request);
  progress_count count = {0, 0, 0, 0};
  request.prompt = "a cat in a hat";
  request.steps = 2;
  request.seed = 3;
  request.rng = "cpu";
  request.expand_prompt = 0;
  request.output = output;
  request.progress = count_progress;
  request.user_data = &count;
  k5_result result;
  const k5_status status = k5_generate(model, &request, &result);
  if (status != K5_OK) {
    k5_model_close(model);
    return k5_last_error();
  }
  const char* failure = same_again(model, request, &result, 0);
  k5_model_unload(model);
  k5_model_unload(NULL);
  if (!failure) failure = same_again(model, request, &result, 1);
  if (!failure && count.loads != 3) failure = "the first generation did not report loading its three models";
  k5_model_close(model);
  if (!failure && (result.width != 128 || result.height != 128 || result.frames != 1)) failure = "wrong size";
  if (!failure && result.rgb == NULL) failure = "no pixels";
  if (!failure && result.seed != 3) failure = "wrong seed";
  if (!failure && result.expanded_prompt != NULL) failure = "an expanded prompt without expansion";
  if (!failure && (count.denoise_steps != 2 || count.events < 4)) failure = "progress was not reported";
  k5_result_free(&result);
  if (!failure && (result.rgb != NULL || result.width != 0)) failure = "k5_result_free left the result filled";
  return failure;
}

/* A 5-frame video with a random seed, kept in memory only. */
const char* c_api_generates_a_video(const char* model_dir) {
  k5_model* model = NULL;
  if (open_tiny(model_dir, "k5_tiny_t2v_5s", &model) != K5_OK) return k5_last_error();
  k5_request request;
  k5_request_init(&request);
  request.prompt = "a red fox";
  request.width = 128;
  request.height = 128;
  request.frames = 5;
  request.steps = 1;
  request.expand_prompt = 0;
  k5_result result;
  const k5_status status = k5_generate(model, &request, &result);
  k5_model_close(model);
  if (status != K5_OK) return k5_last_error();
  const char* failure = NULL;
  if (result.frames != 5 || result.width != 128 || result.rgb == NULL)
    failure = "wrong video";
  else if (result.seed < 0)
    failure = "no seed reported";
  k5_result_free(&result);
  return failure;
}

/* Errors: codes, one-line messages, nothing written. */
const char* c_api_reports_errors(const char* model_dir, const char* output) {
  static char message[512];
  k5_model* model = NULL;
  if (k5_model_open(NULL, &model) != K5_INVALID_ARGUMENT || model != NULL) return "NULL options accepted";
  if (open_tiny("/nonexistent/k5-model", NULL, &model) != K5_ERROR || model != NULL) return "a missing folder opened";
  if (strstr(k5_last_error(), "/nonexistent/k5-model") == NULL) return "the message does not name the folder";
  if (open_tiny(model_dir, "k5_tiny_t2i", &model) != K5_OK) return k5_last_error();
  if (k5_last_error()[0] != '\0') return "a successful call left an error message";
  {
    /* weights_int8 as on the command line: comma-separated parts, checked at open. */
    k5_model_options options;
    k5_model_options_init(&options);
    options.model = model_dir;
    options.config = "k5_tiny_t2i";
    options.weights_int8 = "dit,text-encoder";
    k5_model* int8_model = NULL;
    if (k5_model_open(&options, &int8_model) != K5_OK) return k5_last_error();
    k5_model_close(int8_model);
    options.weights_int8 = "dit,vae";
    if (k5_model_open(&options, &int8_model) != K5_ERROR || int8_model != NULL) return "weights_int8 'vae' accepted";
    if (strstr(k5_last_error(), "vae") == NULL) return "the weights_int8 error does not name the part";
    options.weights_int8 = NULL;
    options.keep_models = "off";
    if (k5_model_open(&options, &int8_model) != K5_OK) return k5_last_error();
    k5_model_close(int8_model);
    options.keep_models = "sometimes";
    if (k5_model_open(&options, &int8_model) != K5_ERROR || int8_model != NULL)
      return "keep_models 'sometimes' accepted";
    if (strstr(k5_last_error(), "auto, on or off") == NULL) return "the keep_models error lists no choices";
  }
  k5_request request;
  k5_request_init(&request);
  k5_result result;
  const char* failure = NULL;
  if (k5_generate(model, &request, &result) != K5_INVALID_ARGUMENT) failure = "a request without a prompt ran";
  request.prompt = "a cat";
  request.width = 100;
  request.height = 100;
  if (!failure && k5_generate(model, &request, &result) != K5_ERROR) failure = "an impossible size ran";
  if (!failure && strstr(k5_last_error(), "128x128") == NULL) failure = "the size error lists no sizes";
  /* Stopped by the progress callback at the first denoising step: K5_CANCELLED, no file. */
  progress_count count = {0, 0, 1, 0};
  request.width = 0;
  request.height = 0;
  request.steps = 3;
  request.expand_prompt = 0;
  request.output = output;
  request.progress = count_progress;
  request.user_data = &count;
  if (!failure && k5_generate(model, &request, &result) != K5_CANCELLED) failure = "the callback did not stop it";
  if (!failure && (result.rgb != NULL || count.denoise_steps != 1)) failure = "a cancelled run left a result";
  FILE* file = fopen(output, "rb");
  if (file) {
    fclose(file);
    if (!failure) failure = "a cancelled run wrote its file";
  }
  if (!failure && k5_generate(NULL, &request, &result) != K5_INVALID_ARGUMENT) failure = "a NULL model was accepted";
  k5_model_close(model);
  k5_model_close(NULL);
  if (failure) {
    snprintf(message, sizeof message, "%s (last error: %s)", failure, k5_last_error());
    return message;
  }
  return NULL;
}
