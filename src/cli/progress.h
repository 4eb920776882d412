// Progress of `k5 generate` on stderr: a bar per stage with rate and ETA on a terminal (a line per stage
// otherwise), or one JSON object per event (`--progress json`) for programs.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "pipelines/generation.h"

namespace k5::cli {

enum class ProgressStyle { bar, json, none };
ProgressStyle parse_progress_style(const std::string& name);  // "bar" | "json" | "none"

class ProgressDisplay {
 public:
  explicit ProgressDisplay(ProgressStyle style);
  void operator()(const GenerationEvent& event);
  // An output written: {"stage": "done", "output": ..., "seed": ...} in JSON; a line naming the file otherwise.
  void finished(const std::string& output, uint64_t seed, double seconds);

 private:
  void draw(const GenerationEvent& event, double elapsed, double rate, double eta);

  ProgressStyle style_;
  bool terminal_ = false;
  std::string stage_;
  std::chrono::steady_clock::time_point stage_start_;
};

}  // namespace k5::cli
