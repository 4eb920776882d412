"""PyTorch side of bench/run_kernels.sh: the same GEMM and attention cases as bench/bench_kernels.cpp.

Prints `torch <case> <dtype> <best seconds> <GFLOP/s>` lines. GEMM: F.linear with fp32 tensors, or bf16 tensors
(PyTorch's fastest CPU BF16 path, oneDNN); attention: F.scaled_dot_product_attention in fp32 and bf16.
    python3 bench/torch_kernels.py [threads] [repeat] [quick]
"""
import sys
import time

import torch
import torch.nn.functional as F


def best_seconds(repeat, body):
    body()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        body()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    quick = len(sys.argv) > 3 and sys.argv[3] == "quick"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    gemms = [(1024, 1792, 1792), (1024, 1792, 7168), (1024, 7168, 1792), (4096, 1792, 7168), (4096, 2560, 10240),
             (4096, 4096, 4096), (16384, 1792, 1792)]
    if quick:
        gemms = gemms[:2]
    with torch.inference_mode():
        for m, k, n in gemms:
            for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
                x = torch.randn(m, k, dtype=dtype)
                w = torch.randn(n, k, dtype=dtype)
                seconds = best_seconds(repeat, lambda: F.linear(x, w))
                print(f"torch gemm_m{m}_k{k}_n{n} {name} {seconds:.6f} {2 * m * n * k / seconds / 1e9:.1f}", flush=True)
        attentions = [(4096, 4, 64), (4096, 2, 128), (16384, 1, 64), (16384, 1, 128)]
        if quick:
            attentions = attentions[:1]
        for tokens, heads, dim in attentions:
            for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
                q, k, v = (torch.randn(1, heads, tokens, dim, dtype=dtype) for _ in range(3))
                seconds = best_seconds(repeat, lambda: F.scaled_dot_product_attention(q, k, v))
                flops = 4 * tokens * tokens * dim * heads
                print(f"torch attention_n{tokens}_h{heads}_d{dim} {name} {seconds:.6f} {flops / seconds / 1e9:.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
