#!/usr/bin/env python3
"""Golden for resize_bicubic_pil (src/pipelines/image_resize.h): PIL's Image.resize with its default BICUBIC
filter on small RGB images, as the official I2I prompt expansion calls it (image.resize((w // 4, h // 4))).
Writes tests/golden/image_resize/pil_cases.safetensors: <case>.input [H, W, 3] U8 and <case>.output.
Run: python3 tools/golden/pil_resize.py
"""
import os

import numpy as np
import PIL
import torch
from PIL import Image
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden", "image_resize")
CASES = [  # (name, input w, h, output w, h)
    ("quarter", 97, 61, 24, 15), ("quarter_even", 128, 96, 32, 24), ("down_odd", 53, 37, 20, 29),
    ("up", 13, 9, 40, 31), ("width_only", 40, 30, 17, 30), ("height_only", 40, 30, 40, 11), ("same", 21, 17, 21, 17),
]


def main():
    rng = np.random.default_rng(7)
    tensors = {}
    for name, w, h, ow, oh in CASES:
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        image = np.stack([127 + 120 * np.sin(0.3 * x + c) * np.cos(0.2 * y) for c in range(3)], -1)
        image = np.clip(image + rng.normal(0, 30, image.shape), 0, 255).astype(np.uint8)
        out = np.asarray(Image.fromarray(image).resize((ow, oh)))
        tensors[name + ".input"] = torch.from_numpy(image.copy())
        tensors[name + ".output"] = torch.from_numpy(out.copy())
    save_file(tensors, os.path.join(OUT, "pil_cases.safetensors"), metadata={"pillow": PIL.__version__})
    print("cases:", len(CASES), "Pillow", PIL.__version__)


if __name__ == "__main__":
    main()
