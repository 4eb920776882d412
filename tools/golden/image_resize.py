#!/usr/bin/env python3
"""Goldens for the image preprocessing (tests/golden/image_resize/cases.safetensors).

Runs torchvision's F.resize / F.crop (as the official pipelines call them, on uint8 NCHW tensors with the
default bilinear antialias=True) and the official helpers resize_image (kandinsky/i2v_pipeline.py) and
resize_video (kandinsky/generation_utils.py), copied below verbatim, on small seeded random images.
Tensors are stored HWC uint8 ("<case>.input", "<case>.output"); the metadata entry "<case>" says what ran:
"resize H W", "resize_image MAX_AREA DIVISIBILITY" or "resize_video H W".

Made with torch 2.15.0 (CPU) and torchvision 0.29.2 (pip install --no-deps torchvision==0.29.2; F.resize
for tensors is pure Python over torch.nn.functional.interpolate, so the torch version is what matters).

Usage: python3 tools/golden/image_resize.py [--out tests/golden/image_resize]
"""
import argparse
import os
from math import sqrt

import torch
import torchvision.transforms.functional as F
from safetensors.torch import save_file


# kandinsky/i2v_pipeline.py
def resize_image(image, max_area, divisibility=16):
    h, w = image.shape[2:]
    area = h * w
    k = sqrt(max_area / area) / divisibility
    new_h = int(round(h * k) * divisibility)
    new_w = int(round(w * k) * divisibility)
    return F.resize(image, (new_h, new_w)), k


# kandinsky/generation_utils.py
def resize_video(video, visual_size):
    height, width = video.shape[-2:]
    nearest_height, nearest_width = visual_size

    scale_factor = min(height / nearest_height, width / nearest_width)
    video = F.resize(video, (int(height / scale_factor), int(width / scale_factor)))

    height, width = video.shape[-2:]
    video = F.crop(
        video,
        (height - nearest_height) // 2,
        (width - nearest_width) // 2,
        nearest_height,
        nearest_width,
    )
    return video


# (name, input height, input width, operation, arguments)
CASES = [
    ("down", 37, 53, "resize", (20, 31)),
    ("up", 13, 17, "resize", (30, 41)),
    ("mixed", 40, 25, "resize", (23, 60)),
    ("width_only", 16, 30, "resize", (16, 11)),
    ("height_only", 29, 12, "resize", (10, 12)),
    ("strong_down", 64, 48, "resize", (9, 7)),
    ("fractional", 100, 75, "resize", (33, 25)),
    ("one_pixel", 9, 11, "resize", (1, 1)),
    ("many_taps", 120, 20, "resize", (9, 23)),
    ("fractional_large", 61, 89, "resize", (41, 57)),
    ("tall_to_wide", 31, 120, "resize", (72, 48)),
    ("resize_image_small", 45, 67, "resize_image", (1024, 16)),
    ("resize_image_wide", 50, 30, "resize_image", (960, 8)),
    ("resize_image_up", 20, 28, "resize_image", (48 * 64, 16)),
    ("resize_video_down", 50, 70, "resize_video", (32, 40)),
    ("resize_video_up", 33, 47, "resize_video", (48, 16)),
    ("resize_video_same_ratio", 60, 80, "resize_video", (30, 40)),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "../../tests/golden/image_resize"))
    args = parser.parse_args()
    torch.manual_seed(0)
    tensors, metadata = {}, {}
    for name, height, width, operation, arguments in CASES:
        image = torch.randint(0, 256, (1, 3, height, width), dtype=torch.uint8)
        if operation == "resize":
            output = F.resize(image, list(arguments))
        elif operation == "resize_image":
            output, _ = resize_image(image, max_area=arguments[0], divisibility=arguments[1])
        else:
            output = resize_video(image, arguments)
        assert output.dtype == torch.uint8
        tensors[f"{name}.input"] = image[0].permute(1, 2, 0).contiguous()
        tensors[f"{name}.output"] = output[0].permute(1, 2, 0).contiguous()
        metadata[name] = f"{operation} {arguments[0]} {arguments[1]}"
    os.makedirs(args.out, exist_ok=True)
    save_file(tensors, os.path.join(args.out, "cases.safetensors"), metadata=metadata)


if __name__ == "__main__":
    main()
