// Nearest-neighbour upsampling by integer factors (F.interpolate mode="nearest": source = target / factor).
#include <algorithm>

#include "backends/cpu/conv.h"

namespace k5::cpu {

void upsample_nearest(Context& ctx, const Tensor& x, int factor_t, int factor_h, int factor_w, bool first_frame_alone,
                      Tensor& out) {
  const int64_t channels = x.size(0), frames = x.size(1), height = x.size(2), width = x.size(3);
  const int64_t out_frames = out.size(1), out_height = out.size(2), out_width = out.size(3);
  const float* input = x.data<float>();
  float* output = out.data<float>();
  ctx.pool().parallel_for(0, channels * out_frames, 1, [&](int64_t begin, int64_t end) {
    for (int64_t index = begin; index < end; ++index) {
      const int64_t c = index / out_frames, t = index % out_frames;
      const int64_t source_t = first_frame_alone ? (t == 0 ? 0 : 1 + (t - 1) / factor_t) : t / factor_t;
      const float* src_frame = input + (c * frames + source_t) * height * width;
      float* dst_frame = output + index * out_height * out_width;
      for (int64_t h = 0; h < out_height; ++h) {
        const float* src = src_frame + (h / factor_h) * width;
        float* dst = dst_frame + h * out_width;
        if (h % factor_h != 0) {
          std::copy(dst - out_width, dst, dst);  // same source row as the previous output row
          continue;
        }
        for (int64_t w = 0; w < out_width; ++w) dst[w] = src[w / factor_w];
      }
    }
  });
}

void place_strided(Context& ctx, const Tensor& x, std::array<int64_t, 3> offset, std::array<int64_t, 3> step,
                   Tensor& out) {
  const int64_t channels = x.size(0), frames = x.size(1), height = x.size(2), width = x.size(3);
  const int64_t out_frames = out.size(1), out_height = out.size(2), out_width = out.size(3);
  const float* input = x.data<float>();
  float* output = out.data<float>();
  ctx.pool().parallel_for(0, channels * frames, 1, [&](int64_t begin, int64_t end) {
    for (int64_t index = begin; index < end; ++index) {
      const int64_t c = index / frames, t = index % frames;
      const float* src = input + index * height * width;
      float* dst_frame = output + (c * out_frames + offset[0] + step[0] * t) * out_height * out_width;
      for (int64_t h = 0; h < height; ++h) {
        float* dst = dst_frame + (offset[1] + step[1] * h) * out_width + offset[2];
        const float* row = src + h * width;
        for (int64_t w = 0; w < width; ++w) dst[step[2] * w] = row[w];
      }
    }
  });
}

}  // namespace k5::cpu
