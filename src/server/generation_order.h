// The body of POST /v1/generations: a JSON object whose fields are `k5 generate`'s long options with '_' for
// '-' (README "HTTP server"). Every field is checked for its type and known name here; values are checked
// against the model by plan_generation, as for the command line.
#pragma once

#include <string>

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

}  // namespace k5
