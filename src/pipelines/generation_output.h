// A generation's file: the format checked before the work, the MP4 or image written with the settings in its
// metadata. Apart from generation.h, so that a program that only generates (the GPU tests) does not link FFmpeg.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "pipelines/generation.h"

namespace k5 {

// The output file's format must suit the mode (.mp4 for video; .png, .jpg or .webp for images) and its folder must
// be writable: checked before any heavy work, one line naming the file otherwise.
void check_output_path(const std::string& path, bool video);

// Writes the generation as `k5 generate -o` does: an MP4 (x264 CRF `crf`, 24 fps) for video, else a PNG / JPEG /
// WebP by the path's extension (JPEG/WebP `quality`), with generation_metadata; atomically.
void write_generation(const std::string& path, const GenerationPlan& plan, const ModelFiles& files, Precision precision,
                      const GenerationResult& result, int crf, int quality);

// The parameters stored in output files' metadata (LoRA adapters as given, with their multipliers).
std::vector<std::pair<std::string, std::string>> generation_metadata(const GenerationPlan& plan,
                                                                     const ModelFiles& files, Precision precision,
                                                                     const std::string& expanded_prompt = "");

}  // namespace k5
