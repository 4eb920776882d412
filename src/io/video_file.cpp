#include "io/video_file.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/dict.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

#include <memory>
#include <mutex>

#include "core/error.h"
#include "io/atomic_file.h"

namespace k5 {
namespace {

void quiet_ffmpeg() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_level(AV_LOG_ERROR); });
}

std::string av_error_text(int code) {
  char text[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(code, text, sizeof text);
  return text;
}

struct CodecContextDeleter {
  void operator()(AVCodecContext* context) const { avcodec_free_context(&context); }
};
struct FrameDeleter {
  void operator()(AVFrame* frame) const { av_frame_free(&frame); }
};
struct PacketDeleter {
  void operator()(AVPacket* packet) const { av_packet_free(&packet); }
};
struct ScalerDeleter {
  void operator()(SwsContext* scaler) const { sws_freeContext(scaler); }
};
using CodecContextPtr = std::unique_ptr<AVCodecContext, CodecContextDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using ScalerPtr = std::unique_ptr<SwsContext, ScalerDeleter>;

struct OutputFile {
  AVFormatContext* context = nullptr;
  ~OutputFile() {
    if (context == nullptr) return;
    if (context->pb && !(context->oformat->flags & AVFMT_NOFILE)) avio_closep(&context->pb);
    avformat_free_context(context);
  }
};

struct InputFile {
  AVFormatContext* context = nullptr;
  ~InputFile() { avformat_close_input(&context); }
};

// sws_getCachedContext frees the context it replaces (also when it fails and returns null).
struct CachedScaler {
  SwsContext* context = nullptr;
  ~CachedScaler() { sws_freeContext(context); }
};

struct Dictionary {
  AVDictionary* entries = nullptr;
  ~Dictionary() { av_dict_free(&entries); }
};

FramePtr allocate_frame() {
  FramePtr frame(av_frame_alloc());
  K5_CHECK(frame != nullptr, "FFmpeg: out of memory");
  return frame;
}

PacketPtr allocate_packet() {
  PacketPtr packet(av_packet_alloc());
  K5_CHECK(packet != nullptr, "FFmpeg: out of memory");
  return packet;
}

// Sends `frame` (null: flush) and writes every packet the encoder has ready.
void encode_and_write(const std::string& path, AVCodecContext* encoder, AVFormatContext* output, AVStream* stream,
                      const AVFrame* frame, AVPacket* packet) {
  int status = avcodec_send_frame(encoder, frame);
  K5_CHECK(status >= 0, path, ": H.264 encoding failed: ", av_error_text(status));
  while (true) {
    status = avcodec_receive_packet(encoder, packet);
    if (status == AVERROR(EAGAIN) || status == AVERROR_EOF) return;
    K5_CHECK(status >= 0, path, ": H.264 encoding failed: ", av_error_text(status));
    av_packet_rescale_ts(packet, encoder->time_base, stream->time_base);
    packet->stream_index = stream->index;
    status = av_interleaved_write_frame(output, packet);
    K5_CHECK(status >= 0, path, ": cannot write a video packet: ", av_error_text(status));
  }
}

const AVCodec* find_h264_encoder(const std::string& path, bool* is_libx264) {
  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  *is_libx264 = codec != nullptr;
  if (codec == nullptr) codec = avcodec_find_encoder(AV_CODEC_ID_H264);
  K5_CHECK(codec != nullptr, path,
           ": this FFmpeg build has no H.264 encoder (install an libavcodec built with libx264)");
  return codec;
}

void encode_mp4(const std::string& path, const std::string& temporary, int frame_count,
                const std::function<Image(int)>& frame_at, const VideoWriteOptions& options) {
  Image first = frame_at(0);
  const int width = first.width, height = first.height;
  K5_CHECK(width > 0 && height > 0 && first.rgb.size() == size_t(width) * size_t(height) * 3, path,
           ": frame 0 is not a valid RGB image (", width, "x", height, ", ", first.rgb.size(), " bytes)");
  K5_CHECK(width % 2 == 0 && height % 2 == 0, path, ": ", width, "x", height,
           " frames cannot be stored as yuv420p H.264; width and height must be even");

  OutputFile output;
  int status = avformat_alloc_output_context2(&output.context, nullptr, "mp4", temporary.c_str());
  K5_CHECK(status >= 0 && output.context, path, ": cannot create an MP4 muxer: ", av_error_text(status));
  bool is_libx264 = false;
  const AVCodec* codec = find_h264_encoder(path, &is_libx264);
  AVStream* stream = avformat_new_stream(output.context, nullptr);
  K5_CHECK(stream != nullptr, path, ": cannot add a video stream");

  CodecContextPtr encoder(avcodec_alloc_context3(codec));
  K5_CHECK(encoder != nullptr, path, ": cannot allocate the H.264 encoder");
  encoder->width = width;
  encoder->height = height;
  encoder->pix_fmt = AV_PIX_FMT_YUV420P;
  encoder->time_base = AVRational{1, options.fps};
  encoder->framerate = AVRational{options.fps, 1};
  encoder->color_range = AVCOL_RANGE_MPEG;
  encoder->colorspace = AVCOL_SPC_SMPTE170M;
  if (output.context->oformat->flags & AVFMT_GLOBALHEADER) encoder->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  Dictionary codec_options;
  if (is_libx264) {
    av_dict_set(&codec_options.entries, "crf", std::to_string(options.crf).c_str(), 0);
    av_dict_set(&codec_options.entries, "preset", "medium", 0);
  }
  status = avcodec_open2(encoder.get(), codec, &codec_options.entries);
  K5_CHECK(status >= 0, path, ": cannot open the ", codec->name, " encoder: ", av_error_text(status));
  status = avcodec_parameters_from_context(stream->codecpar, encoder.get());
  K5_CHECK(status >= 0, path, ": cannot configure the video stream: ", av_error_text(status));
  stream->time_base = encoder->time_base;
  stream->avg_frame_rate = encoder->framerate;

  for (const auto& [key, value] : options.metadata)
    av_dict_set(&output.context->metadata, key.c_str(), value.c_str(), 0);

  status = avio_open(&output.context->pb, temporary.c_str(), AVIO_FLAG_WRITE);
  K5_CHECK(status >= 0, path, ": cannot create ", temporary, ": ", av_error_text(status));
  Dictionary muxer_options;
  av_dict_set(&muxer_options.entries, "movflags", "+faststart+use_metadata_tags", 0);
  status = avformat_write_header(output.context, &muxer_options.entries);
  K5_CHECK(status >= 0, path, ": cannot write the MP4 header: ", av_error_text(status));

  // swscale's defaults for RGB -> yuv420p: BT.601 matrix, limited range (as the ffmpeg command line).
  ScalerPtr scaler(sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, AV_PIX_FMT_YUV420P, SWS_BICUBIC,
                                  nullptr, nullptr, nullptr));
  K5_CHECK(scaler != nullptr, path, ": cannot create the RGB -> YUV converter");
  FramePtr frame = allocate_frame();
  PacketPtr packet = allocate_packet();
  for (int index = 0; index < frame_count; ++index) {
    Image image = index == 0 ? std::move(first) : frame_at(index);
    K5_CHECK(image.width == width && image.height == height && image.rgb.size() == size_t(width) * height * 3, path,
             ": frame ", index, " is ", image.width, "x", image.height, ", frame 0 is ", width, "x", height);
    frame->format = AV_PIX_FMT_YUV420P;
    frame->width = width;
    frame->height = height;
    if (frame->data[0] == nullptr) {
      status = av_frame_get_buffer(frame.get(), 0);
      K5_CHECK(status >= 0, path, ": cannot allocate a video frame: ", av_error_text(status));
    }
    status = av_frame_make_writable(frame.get());
    K5_CHECK(status >= 0, path, ": cannot allocate a video frame: ", av_error_text(status));
    const uint8_t* source[1] = {image.rgb.data()};
    const int source_stride[1] = {width * 3};
    sws_scale(scaler.get(), source, source_stride, 0, height, frame->data, frame->linesize);
    frame->pts = index;
    encode_and_write(path, encoder.get(), output.context, stream, frame.get(), packet.get());
  }
  encode_and_write(path, encoder.get(), output.context, stream, nullptr, packet.get());
  status = av_write_trailer(output.context);
  K5_CHECK(status >= 0, path, ": cannot finish the MP4 file: ", av_error_text(status));
  status = avio_closep(&output.context->pb);
  K5_CHECK(status >= 0, path, ": cannot write: ", av_error_text(status));
}

void open_input(const std::string& path, InputFile* input) {
  int status = avformat_open_input(&input->context, path.c_str(), nullptr, nullptr);
  K5_CHECK(status >= 0, path, ": cannot open video: ", av_error_text(status));
  status = avformat_find_stream_info(input->context, nullptr);
  K5_CHECK(status >= 0, path, ": cannot read video stream information: ", av_error_text(status));
}

int find_video_stream(const std::string& path, AVFormatContext* context, const AVCodec** decoder) {
  const int index = av_find_best_stream(context, AVMEDIA_TYPE_VIDEO, -1, -1, decoder, 0);
  K5_CHECK(index != AVERROR_STREAM_NOT_FOUND, path, ": no video stream");
  K5_CHECK(index >= 0, path, ": no decoder for the video stream: ", av_error_text(index));
  return index;
}

Image frame_to_rgb(const std::string& path, const AVFrame* frame, SwsContext** scaler) {
  Image image(frame->width, frame->height);
  *scaler = sws_getCachedContext(*scaler, frame->width, frame->height, AVPixelFormat(frame->format), frame->width,
                                 frame->height, AV_PIX_FMT_RGB24, SWS_BICUBIC, nullptr, nullptr, nullptr);
  if (*scaler == nullptr) {
    const char* format = av_get_pix_fmt_name(AVPixelFormat(frame->format));
    fail(path, ": cannot convert ", format ? format : "unknown", " frames to RGB");
  }
  const int matrix = frame->colorspace == AVCOL_SPC_BT709 ? SWS_CS_ITU709 : SWS_CS_DEFAULT;
  sws_setColorspaceDetails(*scaler, sws_getCoefficients(matrix), frame->color_range == AVCOL_RANGE_JPEG,
                           sws_getCoefficients(SWS_CS_DEFAULT), 1, 0, 1 << 16, 1 << 16);
  uint8_t* target[1] = {image.rgb.data()};
  const int target_stride[1] = {image.width * 3};
  sws_scale(*scaler, frame->data, frame->linesize, 0, frame->height, target, target_stride);
  return image;
}

}  // namespace

void write_mp4(const std::string& path, int frame_count, const std::function<Image(int)>& frame_at,
               const VideoWriteOptions& options) {
  quiet_ffmpeg();
  K5_CHECK(frame_count > 0, path, ": a video needs at least one frame");
  K5_CHECK(options.fps > 0 && options.fps <= 1000, path, ": frame rate ", options.fps, " is outside 1-1000");
  K5_CHECK(options.crf >= 0 && options.crf <= 51, path, ": crf ", options.crf, " is outside 0-51");
  write_atomically(path,
                   [&](const std::string& temporary) { encode_mp4(path, temporary, frame_count, frame_at, options); });
}

void write_mp4(const std::string& path, const std::vector<Image>& frames, const VideoWriteOptions& options) {
  write_mp4(
      path, int(frames.size()), [&](int index) { return frames[size_t(index)]; }, options);
}

VideoInfo probe_video(const std::string& path) {
  quiet_ffmpeg();
  InputFile input;
  open_input(path, &input);
  const AVCodec* decoder = nullptr;
  const int index = find_video_stream(path, input.context, &decoder);
  const AVStream* stream = input.context->streams[index];
  VideoInfo info;
  info.width = stream->codecpar->width;
  info.height = stream->codecpar->height;
  info.codec = avcodec_get_name(stream->codecpar->codec_id);
  const AVRational rate = stream->avg_frame_rate.num > 0 ? stream->avg_frame_rate : stream->r_frame_rate;
  info.fps = rate.den > 0 ? av_q2d(rate) : 0.0;
  if (stream->nb_frames > 0) {
    info.frames = int(stream->nb_frames);
  } else {
    PacketPtr packet = allocate_packet();
    while (av_read_frame(input.context, packet.get()) >= 0) {
      if (packet->stream_index == index) ++info.frames;
      av_packet_unref(packet.get());
    }
  }
  const AVDictionaryEntry* entry = nullptr;
  while ((entry = av_dict_get(input.context->metadata, "", entry, AV_DICT_IGNORE_SUFFIX)) != nullptr)
    info.metadata[entry->key] = entry->value;
  return info;
}

std::vector<Image> read_video_frames(const std::string& path) {
  quiet_ffmpeg();
  InputFile input;
  open_input(path, &input);
  const AVCodec* codec = nullptr;
  const int index = find_video_stream(path, input.context, &codec);
  CodecContextPtr decoder(avcodec_alloc_context3(codec));
  K5_CHECK(decoder != nullptr, path, ": cannot allocate the ", codec->name, " decoder");
  int status = avcodec_parameters_to_context(decoder.get(), input.context->streams[index]->codecpar);
  K5_CHECK(status >= 0, path, ": cannot configure the decoder: ", av_error_text(status));
  status = avcodec_open2(decoder.get(), codec, nullptr);
  K5_CHECK(status >= 0, path, ": cannot open the ", codec->name, " decoder: ", av_error_text(status));

  std::vector<Image> frames;
  PacketPtr packet = allocate_packet();
  FramePtr frame = allocate_frame();
  CachedScaler scaler;
  auto receive_all = [&] {
    while (true) {
      status = avcodec_receive_frame(decoder.get(), frame.get());
      if (status == AVERROR(EAGAIN) || status == AVERROR_EOF) return;
      K5_CHECK(status >= 0, path, ": cannot decode video: ", av_error_text(status));
      frames.push_back(frame_to_rgb(path, frame.get(), &scaler.context));
      av_frame_unref(frame.get());
    }
  };
  while ((status = av_read_frame(input.context, packet.get())) >= 0) {
    if (packet->stream_index == index) {
      status = avcodec_send_packet(decoder.get(), packet.get());
      av_packet_unref(packet.get());
      K5_CHECK(status >= 0, path, ": cannot decode video: ", av_error_text(status));
      receive_all();
    } else {
      av_packet_unref(packet.get());
    }
  }
  K5_CHECK(status == AVERROR_EOF, path, ": cannot read video: ", av_error_text(status));
  status = avcodec_send_packet(decoder.get(), nullptr);
  K5_CHECK(status >= 0, path, ": cannot decode video: ", av_error_text(status));
  receive_all();
  return frames;
}

}  // namespace k5
