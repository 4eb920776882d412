// The body of POST /v1/generations: a JSON object whose fields are `k5 generate`'s long options with '_' for
// '-' (README "HTTP server"). Every field is checked for its type and known name here; values are checked
// against the model by plan_generation, as for the command line.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "pipelines/generation.h"

namespace k5 {

struct GenerationOrder {
  std::string config;            // a config name of the served model folder; empty: the server's
  GenerationRequest request;     // request.init_image is left empty: the image comes as bytes
  std::string init_image_bytes;  // "init_img", decoded from base64 (PNG, JPEG or WebP)
  std::string format;            // "png", "jpg", "webp" or "mp4"; empty: mp4 for videos, png for images
  int quality = 95;              // JPEG / WebP
  int crf = 5;                   // MP4 (x264), as the official pipelines
  bool random_seed = true;       // no "seed", or -1
};

// Throws k5::Error naming the field: not a JSON object, an unknown field, a wrong type or an out-of-range number.
GenerationOrder parse_generation_order(const std::string& body);

// A request of OpenAI's Images API (POST /v1/images/generations and /v1/images/edits): OpenAI's fields in k5's
// terms, k5's own fields of POST /v1/generations accepted beside them. "model" names a config; "size" is
// "WIDTHxHEIGHT" or "auto"; "output_format" png, jpeg or webp; "output_compression" (0..100) the JPEG / WebP
// quality; "n" outputs with the seeds SEED, SEED+1, ... (as `k5 generate -b`); "response_format" b64_json or url.
// OpenAI's "quality", "style", "user", "background" and "moderation" have no meaning here: accepted, ignored.
struct ImagesOrder {
  GenerationOrder order;
  int count = 1;      // "n"
  bool urls = false;  // answer with the results' URLs instead of the images in base64
};
constexpr int kMaxImagesPerRequest = 10;  // OpenAI's bound on "n"

// From a JSON body (generations).
ImagesOrder parse_images_order(const std::string& body);
// From the text fields of a multipart form (edits), where every value is text: the numbers and true/false of k5's
// fields are read from it; "lora" may repeat. The image comes separately.
ImagesOrder parse_images_form(const std::vector<std::pair<std::string, std::string>>& fields);

}  // namespace k5
