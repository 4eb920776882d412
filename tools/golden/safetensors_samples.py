"""Writes small .safetensors files with the reference `safetensors` package, for k5's interop tests.

Output: tests/golden/io/reference_torch.safetensors and reference_expected.json (what each tensor holds,
as float lists, so the C++ test compares values without another safetensors reader). Deterministic.
Run from the repository root: python3 tools/golden/safetensors_samples.py
"""
import json
import os

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden", "io")


def main():
    os.makedirs(OUT, exist_ok=True)
    generator = torch.Generator().manual_seed(1234)
    tensors = {
        "blocks.0.weight": torch.randn(4, 8, generator=generator),
        "blocks.0.bias": torch.randn(8, generator=generator).to(torch.bfloat16),
        "half": torch.randn(3, 2, generator=generator).to(torch.float16),
        "fp8": (torch.randn(5, generator=generator) * 4).to(torch.float8_e4m3fn),
        "ids": torch.arange(6, dtype=torch.int64).reshape(2, 3) - 2,
        "int32": torch.tensor([7, -9, 11], dtype=torch.int32),
        "int8": torch.tensor([-128, 0, 127], dtype=torch.int8),
        "bytes": torch.tensor([0, 1, 255], dtype=torch.uint8),
        "mask": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }
    metadata = {"format": "pt", "note": "k5 interop sample"}
    save_file(tensors, os.path.join(OUT, "reference_torch.safetensors"), metadata=metadata)
    expected = {
        name: {
            "dtype": str(t.dtype).replace("torch.", ""),
            "shape": list(t.shape),
            "values": t.to(torch.float64).flatten().tolist(),
        }
        for name, t in tensors.items()
    }
    with open(os.path.join(OUT, "reference_expected.json"), "w") as f:
        json.dump({"metadata": metadata, "tensors": expected}, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
