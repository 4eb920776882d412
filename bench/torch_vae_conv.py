#!/usr/bin/env python3
"""PyTorch baseline for bench/bench_vae_conv.cpp: replicate pad + Conv3d 3x3x3 at the same shapes, GFLOP/s."""
import sys
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
for channels, frames, size in ((512, 2, 32), (256, 3, 64), (128, 5, 128)):
    conv = torch.nn.Conv3d(channels, channels, 3).eval()
    x = torch.randn(1, channels, frames, size, size)
    with torch.no_grad():
        best = float("inf")
        for _ in range(4):
            start = time.perf_counter()
            conv(F.pad(x, (1, 1, 1, 1, 2, 0), mode="replicate"))
            best = min(best, time.perf_counter() - start)
    flops = 2.0 * channels * channels * 27 * frames * size * size
    print(f"torch conv {channels}x{frames}x{size}x{size}: {best * 1e3:.1f} ms, {flops / best * 1e-9:.1f} GFLOP/s")
