/* k5 C API: Kandinsky 5 generation from C (and from any language that calls C).
 *
 * The same pipeline as `k5 generate`: open a model folder once, then run generations on it. Every call returns
 * K5_OK or an error code; k5_last_error() then says what went wrong in one line (the message `k5 generate`
 * prints). Calls on one k5_model must not overlap (it runs one generation at a time, on every core or the GPU);
 * separate models may be used from separate threads.
 *
 *   k5_model_options options;
 *   k5_model_options_init(&options);
 *   options.model = "/models/kandinsky-5";
 *   options.config = "k5_lite_t2i_sft_hd";
 *   k5_model* model;
 *   if (k5_model_open(&options, &model) != K5_OK) { fprintf(stderr, "%s\n", k5_last_error()); return 1; }
 *   k5_request request;
 *   k5_request_init(&request);
 *   request.prompt = "A watercolour cat in a hat";
 *   request.output = "cat.png";  // optional: also written as `k5 generate -o` writes it
 *   k5_result result;
 *   if (k5_generate(model, &request, &result) == K5_OK) { ... result.rgb ...; k5_result_free(&result); }
 *   k5_model_close(model);
 */
#ifndef K5_K5_H
#define K5_K5_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define K5_NOEXCEPT noexcept
extern "C" {
#else
#define K5_NOEXCEPT
#endif

typedef enum k5_status {
  K5_OK = 0,
  K5_ERROR = 1,           /* bad arguments or settings, missing or corrupt files, failed computation */
  K5_CANCELLED = 2,       /* the progress callback asked to stop; nothing was written */
  K5_INVALID_ARGUMENT = 3 /* a NULL pointer where one is required (the model, the request, its prompt, ...) */
} k5_status;

/* The message of the last failed call on this thread ("" when none failed); valid until the next call. */
const char* k5_last_error(void) K5_NOEXCEPT;
/* k5's version, e.g. "0.1.0". */
const char* k5_version(void) K5_NOEXCEPT;

/* Opening a model: the model folder and the options `k5 generate` takes for it. NULL / 0 = the default. */
typedef struct k5_model_options {
  const char* model;        /* required: a model folder (official layout or diffusers) or an official config .yaml */
  const char* config;       /* the config name when the folder has several */
  const char* device;       /* "auto" (default: cuda when a GPU answers), "cpu" or "cuda" */
  const char* precision;    /* "bf16" (default) or "fp32" */
  const char* weights_int8; /* "none" (default), "dit", "text-encoder", "dit,text-encoder" or "all" */
  int threads;              /* CPU threads; 0: one per core */
  int verbose;              /* 1: log each stage and warnings on stderr; 0 (default): print nothing */
  const char* keep_models;  /* models kept loaded between generations: "auto" (default: while they take at most
                               half of the GPU's memory, or of the RAM on the CPU), "on", or "off" (each
                               generation loads what it needs and releases it after its stage); a failed
                               generation releases them */
} k5_model_options;

void k5_model_options_init(k5_model_options* options) K5_NOEXCEPT;

typedef struct k5_model k5_model;

/* Finds the model's files and checks them (nothing heavy is loaded: the first generation loads what it needs). */
k5_status k5_model_open(const k5_model_options* options, k5_model** model) K5_NOEXCEPT;
void k5_model_close(k5_model* model) K5_NOEXCEPT; /* NULL is fine */
/* Releases the models and prompt embeddings kept (the next generation loads them again); not during a k5_generate
 * on it. */
void k5_model_unload(k5_model* model) K5_NOEXCEPT; /* NULL is fine */

/* Called at the start of each stage (done = 0) and after each unit of work: stage is "load" (once per model that
 * loads: 0 then 1 of 1; kept models skip it), "expand", "text", "image", "denoise" or "decode". Returning non-zero
 * stops the generation (K5_CANCELLED). */
typedef int (*k5_progress_callback)(const char* stage, int done, int total, void* user_data);

/* One generation: `k5 generate`'s settings. Start from k5_request_init, which sets the defaults (the official
 * ones; a zero-filled struct is not the default request). Messages name the settings as the command line does
 * (`-W`/`-H` for width/height, `--init-img`, `--output`, ...). */
typedef struct k5_request {
  const char* prompt;          /* required */
  const char* negative_prompt; /* NULL: the official default */
  int width, height;           /* pixels; 0: the default size */
  int frames;                  /* video frames (4k + 1); 0: the model's duration */
  int steps;                   /* 0: the config's */
  double cfg_scale;            /* guidance weight; negative: the config's */
  double scheduler_scale;      /* negative: the config's */
  int64_t seed;                /* negative: a random seed (reported in the result) */
  const char* rng;             /* "cuda" (default, as the official GPU run) or "cpu" */
  const char* init_image;      /* image file: the I2V first frame or the I2I source; NULL: none */
  int expand_prompt;           /* 1 (default, as official): Qwen2.5-VL rewrites the prompt first */
  int magcache;                /* 1: MagCache */
  const char* const* loras;    /* LoRA adapters, "PATH[:MULTIPLIER]" each */
  size_t lora_count;
  const char* output; /* NULL, or a .mp4 / .png / .jpg / .webp file to write, with the metadata */
  k5_progress_callback progress;
  void* user_data; /* passed to `progress` */
} k5_request;

void k5_request_init(k5_request* request) K5_NOEXCEPT;

/* What a generation made. The pixels are RGB8, frame after frame, row after row. */
typedef struct k5_result {
  int width, height;
  int frames;            /* 1 for an image */
  uint8_t* rgb;          /* frames * height * width * 3 bytes */
  int64_t seed;          /* the seed used */
  char* expanded_prompt; /* the prompt the model was conditioned on when expansion ran, else NULL */
} k5_result;

/* Loads the models each stage needs that are not loaded already (keep_models says which stay loaded), runs the
 * generation, writes request->output when set (last, atomically: a failed call leaves no file) and fills *result,
 * which it overwrites: free a previous result first. On failure *result is zeroed. */
k5_status k5_generate(k5_model* model, const k5_request* request, k5_result* result) K5_NOEXCEPT;
void k5_result_free(k5_result* result) K5_NOEXCEPT; /* releases what k5_generate allocated; the struct may be reused */

#ifdef __cplusplus
}
#endif

#endif /* K5_K5_H */
