// Videos on disk through FFmpeg's libraries: H.264 MP4 out, any FFmpeg-readable video in.
//
// Writing: H.264 (libx264 when the FFmpeg build has it, else FFmpeg's default H.264 encoder; `crf` only
// applies to libx264), yuv420p converted with swscale's default BT.601 limited-range matrix (what the
// ffmpeg command line does for RGB input) and tagged as such, constant frame rate, +faststart (the index
// first, so players can start before the download ends). Metadata entries go into the container
// (movflags +use_metadata_tags, so any key round-trips; `comment`, `title`, `description` are the ones
// players show). The file is written under a temporary name beside the target and renamed; a failure
// leaves nothing behind. yuv420p needs an even width and height.
//
// FFmpeg's console logging is lowered to errors the first time any function here runs.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "io/image_file.h"

namespace k5 {

struct VideoWriteOptions {
  int fps = 24;
  int crf = 18;  // libx264 constant rate factor: 0 lossless .. 51 worst; 18 is visually near-lossless
  std::vector<std::pair<std::string, std::string>> metadata;
};

void write_mp4(const std::string& path, const std::vector<Image>& frames, const VideoWriteOptions& options = {});

// Streaming form: frame_at(i) for i in [0, frame_count) is called once each, in order; every frame must
// have the first frame's size.
void write_mp4(const std::string& path, int frame_count, const std::function<Image(int index)>& frame_at,
               const VideoWriteOptions& options = {});

struct VideoInfo {
  int width = 0;
  int height = 0;
  int frames = 0;  // from the container's frame count, else by counting the stream's packets
  double fps = 0;  // average frame rate
  std::string codec;
  std::map<std::string, std::string> metadata;  // container-level tags
};

VideoInfo probe_video(const std::string& path);

// Every frame of the first video stream, decoded and converted to RGB8.
std::vector<Image> read_video_frames(const std::string& path);

}  // namespace k5
