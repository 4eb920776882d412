#include "io/video_file.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "io/io_test_util.h"

namespace k5 {
namespace {

using test::ScratchDir;

// A smooth pattern that moves with the frame index, so every frame differs.
Image moving_frame(int width, int height, int index) {
  Image image(width, height);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      uint8_t* p = image.pixel(x, y);
      p[0] = uint8_t(40 + 3 * ((x + 2 * index) % 60));
      p[1] = uint8_t(40 + 3 * y);
      p[2] = uint8_t(128 + 80 * std::sin(0.15 * (x - y) + 0.3 * index));
    }
  return image;
}

double mean_absolute_difference(const Image& a, const Image& b) {
  double total = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) total += std::abs(int(a.rgb[i]) - int(b.rgb[i]));
  return total / double(a.rgb.size());
}

TEST(VideoFile, Mp4RoundTripKeepsFramesSizeRateAndMetadata) {
  ScratchDir dir;
  std::vector<Image> frames;
  for (int i = 0; i < 25; ++i) frames.push_back(moving_frame(64, 48, i));
  VideoWriteOptions options;
  options.metadata = {{"comment", "prompt: a fox & \"snow\""}, {"k5_seed", "42"}};
  const std::string path = dir.file("clip.mp4");
  write_mp4(path, frames, options);

  const VideoInfo info = probe_video(path);
  EXPECT_EQ(info.width, 64);
  EXPECT_EQ(info.height, 48);
  EXPECT_EQ(info.frames, 25);
  EXPECT_DOUBLE_EQ(info.fps, 24.0);
  EXPECT_EQ(info.codec, "h264");
  const auto tag = [&](const std::string& key) {
    const auto found = info.metadata.find(key);
    return found == info.metadata.end() ? std::string("<missing>") : found->second;
  };
  EXPECT_EQ(tag("comment"), "prompt: a fox & \"snow\"");
  EXPECT_EQ(tag("k5_seed"), "42");

  const std::vector<Image> decoded = read_video_frames(path);
  ASSERT_EQ(decoded.size(), 25u);
  for (size_t i = 0; i < decoded.size(); ++i) {
    ASSERT_EQ(decoded[i].width, 64);
    ASSERT_EQ(decoded[i].height, 48);
    EXPECT_LT(mean_absolute_difference(decoded[i], frames[i]), 6.0) << "frame " << i;
  }
  // +faststart: the index (moov) comes before the media data (mdat).
  const std::vector<uint8_t> bytes = test::read_bytes(path);
  const std::string text(bytes.begin(), bytes.end());
  ASSERT_NE(text.find("moov"), std::string::npos);
  EXPECT_LT(text.find("moov"), text.find("mdat"));
  // Only the target exists: the temporary file was renamed.
  int files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1);
}

TEST(VideoFile, StreamingWriterUsesTheRequestedRate) {
  ScratchDir dir;
  VideoWriteOptions options;
  options.fps = 30;
  options.crf = 28;
  int calls = 0;
  write_mp4(
      dir.file("s.mp4"), 7,
      [&](int index) {
        EXPECT_EQ(index, calls++);
        return moving_frame(32, 16, index);
      },
      options);
  EXPECT_EQ(calls, 7);
  const VideoInfo info = probe_video(dir.file("s.mp4"));
  EXPECT_EQ(info.frames, 7);
  EXPECT_DOUBLE_EQ(info.fps, 30.0);
  EXPECT_EQ(read_video_frames(dir.file("s.mp4")).size(), 7u);
}

TEST(VideoFile, OddSizeIsRefusedAndLeavesNoFile) {
  ScratchDir dir;
  const std::string path = dir.file("odd.mp4");
  try {
    write_mp4(path, {moving_frame(63, 48, 0)});
    ADD_FAILURE() << "odd width accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("even"), std::string::npos) << error.what();
  }
  EXPECT_THROW(write_mp4(path, {moving_frame(64, 47, 0)}), Error);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(VideoFile, BadInputsLeaveNoFile) {
  ScratchDir dir;
  const std::string path = dir.file("bad.mp4");
  EXPECT_THROW(write_mp4(path, std::vector<Image>{}), Error);
  EXPECT_THROW(write_mp4(path, {moving_frame(32, 16, 0), moving_frame(16, 16, 1)}), Error);  // size changes
  VideoWriteOptions options;
  options.crf = 99;
  EXPECT_THROW(write_mp4(path, {moving_frame(32, 16, 0)}, options), Error);
  EXPECT_THROW(write_mp4(dir.file("no_such_dir/a.mp4"), {moving_frame(32, 16, 0)}), Error);
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(VideoFile, MissingOrCorruptFilesAreErrors) {
  ScratchDir dir;
  const std::string missing = dir.file("missing.mp4");
  try {
    probe_video(missing);
    ADD_FAILURE() << "missing file accepted";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(missing), std::string::npos) << error.what();
  }
  EXPECT_THROW(read_video_frames(missing), Error);
  test::write_text(dir.file("junk.mp4"), std::string(500, 'x'));
  EXPECT_THROW(probe_video(dir.file("junk.mp4")), Error);
  EXPECT_THROW(read_video_frames(dir.file("junk.mp4")), Error);
}

}  // namespace
}  // namespace k5
