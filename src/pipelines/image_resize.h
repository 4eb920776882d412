// The official pipelines' image preprocessing, reproduced bit for bit.
//
// Both official helpers call torchvision's F.resize on a uint8 NCHW tensor with the defaults
// (interpolation=BILINEAR, antialias=True), which runs
//   x.float() -> aten::_upsample_bilinear2d_aa(align_corners=False) on the CPU -> torch.round -> uint8
// and resize_video then calls F.crop. resize_bilinear_antialias computes the same float32 operations in
// the same order (width pass first, then height; weights as ATen computes them), so results match
// torchvision exactly (tests/pipelines/image_resize_test.cpp against tools/golden/image_resize.py). The
// reference is torch's CPU kernel as the x86-64 wheel runs it (its mix of fused and unfused multiply-adds
// is reproduced, see image_resize.cpp); other torch builds (CUDA, ARM) may differ by 1 on rare values.
#pragma once

#include "io/image_file.h"

namespace k5 {

// torchvision.transforms.functional.resize(image, (height, width)) for a uint8 image.
Image resize_bilinear_antialias(const Image& image, int height, int width);

// PIL's Image.resize((width, height)) with its default BICUBIC filter (Pillow's Resample.c, 8-bit fixed
// point), as the official I2I prompt expansion shrinks the source image.
Image resize_bicubic_pil(const Image& image, int height, int width);

// torchvision.transforms.functional.crop(image, top, left, height, width): the window may reach outside
// the image; pixels there are 0, as torchvision pads.
Image crop(const Image& image, int top, int left, int height, int width);

struct ResizedImage {
  Image image;
  double k = 0;  // the official scale factor, sqrt(max_area / area) / divisibility
};

// resize_image(image, max_area, divisibility) of kandinsky/i2v_pipeline.py (the i2v first frame):
//   k = sqrt(max_area / (h * w)) / divisibility
//   new_h = int(round(h * k) * divisibility), new_w likewise (Python's round: half to even).
ResizedImage resize_image(const Image& image, double max_area, int divisibility = 16);

// resize_video(video, (height, width)) of kandinsky/generation_utils.py (the edit/i2i input): scales to
// cover (height, width) keeping the aspect ratio (int() truncation of h / scale and w / scale), then crops
// the centre ((H - height) // 2, (W - width) // 2).
Image resize_video(const Image& image, int height, int width);

}  // namespace k5
