#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace k5::cli {

ProgressStyle parse_progress_style(const std::string& name) {
  if (name == "bar") return ProgressStyle::bar;
  if (name == "json") return ProgressStyle::json;
  if (name == "none") return ProgressStyle::none;
  fail("--progress must be bar, json or none, found '", name, "'");
}

ProgressDisplay::ProgressDisplay(ProgressStyle style) : style_(style), terminal_(::isatty(STDERR_FILENO) != 0) {}

namespace {

std::string clock_string(double seconds) {
  const int s = int(seconds + 0.5);
  char text[32];
  if (s >= 3600)
    std::snprintf(text, sizeof text, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(text, sizeof text, "%02d:%02d", s / 60, s % 60);
  return text;
}

const char* stage_title(const std::string& stage) {
  if (stage == "load") return "loading";
  if (stage == "expand") return "prompt expansion";
  if (stage == "text") return "text encoders";
  if (stage == "image") return "input image";
  if (stage == "denoise") return "denoising";
  if (stage == "decode") return "VAE decode";
  return stage.c_str();
}

}  // namespace

void ProgressDisplay::operator()(const GenerationEvent& event) {
  const auto now = std::chrono::steady_clock::now();
  if (event.stage != stage_) {
    stage_ = event.stage;
    stage_start_ = now;
  }
  const double elapsed = std::chrono::duration<double>(now - stage_start_).count();
  const double rate = event.done > 0 && elapsed > 0 ? event.done / elapsed : 0.0;
  const double eta = rate > 0 ? (event.total - event.done) / rate : 0.0;
  draw(event, elapsed, rate, eta);
}

void ProgressDisplay::draw(const GenerationEvent& event, double elapsed, double rate, double eta) {
  if (style_ == ProgressStyle::none) return;
  if (style_ == ProgressStyle::json) {
    nlohmann::json line{{"stage", event.stage}, {"done", event.done},       {"total", event.total},
                        {"elapsed_s", elapsed}, {"rate_per_s", rate},       {"eta_s", eta}};
    if (!event.detail.empty()) line["detail"] = event.detail;
    std::fprintf(stderr, "%s\n", line.dump().c_str());
    std::fflush(stderr);
    return;
  }
  const bool last = event.done == event.total;
  if (!terminal_ && !last) return;  // logs get one line per finished stage
  constexpr int kWidth = 30;
  const int filled = event.total > 0 ? kWidth * event.done / event.total : kWidth;
  std::string bar(size_t(filled), '#');
  bar.append(size_t(kWidth - filled), '.');
  char speed[64] = "";
  if (rate >= 1.0)
    std::snprintf(speed, sizeof speed, "%.2f it/s", rate);
  else if (rate > 0)
    std::snprintf(speed, sizeof speed, "%.2f s/it", 1.0 / rate);
  std::fprintf(stderr, "%s%-14s [%s] %d/%d %s elapsed, ETA %s %s%s%s", terminal_ ? "\r\033[K" : "",
               stage_title(event.stage), bar.c_str(), event.done, event.total, clock_string(elapsed).c_str(),
               clock_string(eta).c_str(), speed, event.detail.empty() ? "" : ", ", event.detail.c_str());
  if (last || !terminal_) std::fputc('\n', stderr);
  std::fflush(stderr);
}

void ProgressDisplay::finished(const std::string& output, uint64_t seed, double seconds) {
  if (style_ == ProgressStyle::json) {
    std::fprintf(
        stderr, "%s\n",
        nlohmann::json{{"stage", "done"}, {"output", output}, {"seed", seed}, {"elapsed_s", seconds}}.dump().c_str());
  } else if (style_ == ProgressStyle::bar) {
    std::fprintf(stderr, "wrote %s (%.1f s)\n", output.c_str(), seconds);
  }
  std::fflush(stderr);
}

}  // namespace k5::cli
