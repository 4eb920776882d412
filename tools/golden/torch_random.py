"""Writes torch.randn results from fresh CPU generators, for k5's torch-compatible RNG (src/pipelines/torch_random).

Output: tests/golden/torch_random/cpu.safetensors, one tensor per case, named "seed=<s>,dtype=<d>,shape=<a>x<b>",
holding exactly torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s), dtype=d).
tests/golden/torch_random/multinomial.safetensors, per seed <s>, one generator used in this order:
  "seed=<s>,exponential=<n>"   torch.empty(n).exponential_(generator=g) for n = 5, 16, 1000 (state carried)
  "seed=<s>,probs"             [rows, 300] probability rows (zeros in them, as top-k / top-p leave)
  "seed=<s>,multinomial"       torch.multinomial(row, 1, generator=g) for each row in turn
Metadata records the torch version and the ATen CPU capability the values came from: torch's float Box-Muller
kernel differs between the DEFAULT build (glibc sinf/cosf/logf) and the AVX2 one (AVX-512 machines use the
AVX2 kernel too); k5 reproduces the AVX2 one, so run this on an AVX2 or AVX-512 machine.
Run from the repository root: python3 tools/golden/torch_random.py
"""
import os

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden", "torch_random")

SEEDS = [0, 42, 1137, 2**32 - 1, 2**64 - 1]  # 2**64 - 1 is the largest seed torch accepts
# numel 1, 7, 15, 16, 17, 33, 1000: the scalar path (< 16), one chunk, a recomputed tail, many chunks.
SHAPES = [[1], [7], [3, 5], [16], [17], [3, 11], [10, 100]]
LATENT_SHAPE = [3, 8, 12, 16]  # a latent-like [T, H, W, C]; only for a few seeds, to keep the file small
LATENT_SEEDS = [0, 42, 2**64 - 1]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def multinomial_cases():
    tensors = {}
    for seed in [0, 42, 2**64 - 1]:
        g = torch.Generator("cpu").manual_seed(seed)
        for n in [5, 16, 1000]:
            tensors[f"seed={seed},exponential={n}"] = torch.empty(n).exponential_(generator=g)
        logits = torch.randn(40, 300, generator=torch.Generator().manual_seed(seed % 1000 + 7)) * 3
        keep = torch.rand(40, 300, generator=torch.Generator().manual_seed(seed % 1000 + 8)) < 0.3
        keep[:, 0] = True
        probs = torch.softmax(logits.masked_fill(~keep, float("-inf")), dim=-1)
        tensors[f"seed={seed},probs"] = probs
        tensors[f"seed={seed},multinomial"] = torch.cat([torch.multinomial(p, 1, generator=g) for p in probs])
    return tensors


def main():
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX2", "AVX512"):
        raise SystemExit(f"ATen CPU capability is {capability}; k5 follows the AVX2/AVX512 kernels")
    tensors = {}
    for seed in SEEDS:
        shapes = SHAPES + ([LATENT_SHAPE] if seed in LATENT_SEEDS else [])
        for dtype_name, dtype in DTYPES.items():
            for shape in shapes:
                generator = torch.Generator("cpu").manual_seed(seed)
                name = f"seed={seed},dtype={dtype_name},shape={'x'.join(map(str, shape))}"
                tensors[name] = torch.randn(shape, generator=generator, dtype=dtype)
    os.makedirs(OUT, exist_ok=True)
    metadata = {"torch_version": torch.__version__, "cpu_capability": capability}
    save_file(tensors, os.path.join(OUT, "cpu.safetensors"), metadata=metadata)
    save_file(multinomial_cases(), os.path.join(OUT, "multinomial.safetensors"), metadata=metadata)
    print(f"wrote {len(tensors)} cases ({capability}, torch {torch.__version__})")


if __name__ == "__main__":
    main()
