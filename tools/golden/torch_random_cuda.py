"""On a machine with an NVIDIA GPU and PyTorch: writes what torch's CUDA generator gives, for k5's CPU
reproduction of it (src/pipelines/torch_random: `--rng cuda`, the default noise and sampling generator).

Not a committed golden (it needs a GPU); the CudaGolden tests (tests/backends/cuda/torch_random_golden_test.cpp,
in k5_gpu_tests) read the file named by K5_TORCH_CUDA_GOLDEN and skip when it is unset:
    python3 tools/golden/torch_random_cuda.py /tmp/torch_cuda_rng.safetensors
    K5_TORCH_CUDA_GOLDEN=/tmp/torch_cuda_rng.safetensors build/tests/k5_gpu_tests --gtest_filter='CudaGolden.*'

Tensors:
  "randn,seed=<s>,dtype=<d>,shape=<a>x<b>..."  torch.randn(shape, generator=torch.Generator("cuda").manual_seed(s),
                                              device="cuda", dtype=d); the big shape is the latent of a 5 s
                                              768x512 video (31 x 64 x 96 x 16, as the official pipelines draw it)
  "seed=<s>,exponential=<n>"                  torch.empty(n, device="cuda").exponential_(generator=g), n = 5, 16,
                                              1000, 152064 (Qwen2.5-VL's vocabulary), one generator in this order
  "seed=<s>,probs" / "seed=<s>,multinomial"   probability rows [20, 3000] and torch.multinomial(row, 1,
                                              generator=g) for each row in turn on the same generator
Metadata: the GPU's multiprocessor count and threads per multiprocessor (the launch layout depends on them).
"""
import sys

import torch
from safetensors.torch import save_file


def main():
    if len(sys.argv) != 2 or not torch.cuda.is_available():
        raise SystemExit("usage (on a GPU machine): python3 torch_random_cuda.py OUT.safetensors")
    properties = torch.cuda.get_device_properties(0)
    tensors = {}
    shapes = {"19": [19], "1000": [1000], "3x5x7x16": [3, 5, 7, 16]}
    for seed in [0, 42, 2**64 - 1]:
        for dtype_name, dtype in [("float32", torch.float32), ("bfloat16", torch.bfloat16)]:
            cases = dict(shapes)
            if seed == 42:
                cases["31x64x96x16"] = [31, 64, 96, 16]
            for text, shape in cases.items():
                g = torch.Generator("cuda").manual_seed(seed)
                values = torch.randn(shape, generator=g, device="cuda", dtype=dtype)
                tensors[f"randn,seed={seed},dtype={dtype_name},shape={text}"] = values.cpu()
    for seed in [0, 42]:
        g = torch.Generator("cuda").manual_seed(seed)
        for n in [5, 16, 1000, 152064]:
            tensors[f"seed={seed},exponential={n}"] = torch.empty(n, device="cuda").exponential_(generator=g).cpu()
        logits = torch.randn(20, 3000, generator=torch.Generator().manual_seed(seed + 7)) * 3
        keep = torch.rand(20, 3000, generator=torch.Generator().manual_seed(seed + 8)) < 0.3
        keep[:, 0] = True
        probs = torch.softmax(logits.masked_fill(~keep, float("-inf")), dim=-1)
        tensors[f"seed={seed},probs"] = probs
        ids = [torch.multinomial(row.cuda(), 1, generator=g).cpu() for row in probs]
        tensors[f"seed={seed},multinomial"] = torch.cat(ids)
    metadata = {"torch_version": torch.__version__, "device": properties.name,
                "multiprocessors": str(properties.multi_processor_count),
                "max_threads_per_multiprocessor": str(properties.max_threads_per_multi_processor)}
    save_file(tensors, sys.argv[1], metadata=metadata)
    print(f"wrote {len(tensors)} tensors from {properties.name} to {sys.argv[1]}")


if __name__ == "__main__":
    main()
