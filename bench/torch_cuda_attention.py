"""PyTorch's attention at the shape bench_cuda_attention times, on the same GPU, in the same run. Dense:
torch.nn.functional.scaled_dot_product_attention on BF16 q, k, v [1, H, L, D] with each SDPA backend this PyTorch
has (flash, cuDNN, efficient); NABLA (KEEP < 1, TOKENS a multiple of 64): flex_attention, compiled, with a
BlockMask of full 64x64 blocks keeping about the same fraction, built as the official nablaT_v2 builds it.

    python3 bench/torch_cuda_attention.py TOKENS HEADS DIM [REPEAT] [KEEP]

Prints `torch attention TOKENS HEADS DIM KEEP BACKEND SECONDS TFLOPS` per backend (best of REPEAT after a warm-up).
"""
import sys
import time

import torch
import torch.nn.functional as F


def best_seconds(repeat, body):
    body()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        body()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main(tokens, heads, dim, repeat, keep):
    generator = torch.Generator(device="cuda").manual_seed(1)
    q, k, v = (torch.randn(1, heads, tokens, dim, device="cuda", dtype=torch.bfloat16, generator=generator)
               for _ in range(3))
    flop = 4.0 * tokens * tokens * dim * heads
    results = []
    if keep >= 1.0:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        for name in ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION"):
            backend = getattr(SDPBackend, name, None)
            if backend is None:
                continue
            try:
                with sdpa_kernel(backend):
                    seconds = best_seconds(repeat, lambda: F.scaled_dot_product_attention(q, k, v))
            except RuntimeError as error:
                print(f"torch attention {name.lower()}: {str(error).splitlines()[0]}")
                continue
            results.append((name.lower(), seconds, 1.0))
    else:
        from torch.nn.attention.flex_attention import BlockMask, flex_attention
        blocks = tokens // 64
        kept = torch.rand(heads, blocks, blocks, generator=torch.Generator().manual_seed(7)) < keep
        kept |= torch.eye(blocks, dtype=torch.bool).unsqueeze(0)
        kept = kept.cuda().unsqueeze(0)
        # As the official nablaT_v2 builds it: every kept 64x64 block a full block, no mask_mod.
        kv_count = kept.sum(-1).to(torch.int32)
        kv_indices = kept.int().argsort(dim=-1, descending=True).to(torch.int32)
        block_mask = BlockMask.from_kv_blocks(torch.zeros_like(kv_count), kv_indices, kv_count, kv_indices,
                                              BLOCK_SIZE=64, mask_mod=None)
        compiled = torch.compile(flex_attention, dynamic=False)
        seconds = best_seconds(repeat, lambda: compiled(q, k, v, block_mask=block_mask))
        results.append(("flex_attention", seconds, kept.float().mean().item()))
    for name, seconds, fraction in results:
        print(f"torch attention {tokens} {heads} {dim} {fraction:.3f} {name} {seconds:.6f} "
              f"{flop * fraction / seconds / 1e12:.1f}", flush=True)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(int(arguments[0]), int(arguments[1]), int(arguments[2]), int(arguments[3]) if len(arguments) > 3 else 5,
         float(arguments[4]) if len(arguments) > 4 else 1.0)
