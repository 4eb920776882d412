#!/usr/bin/env bash
# Runs on the GPU machine (device tool) in the repository root, with .gpu-bundle/ carried (scripts/gpu-bundle.sh):
# every GPU test (each CUDA op and the CrossDiT forward against the CPU / the goldens), then k5's copy of
# torch's CUDA generator against torch there (tools/golden/torch_random_cuda.py). Logs go to $OUT (or /tmp).
set -uo pipefail
out=${OUT:-/tmp/k5-gpu-check}
mkdir -p "$out"
bundle=$PWD/.gpu-bundle
cuda_libs=$(python3 - <<'PY' 2>/dev/null
import glob, os, site
paths = []
for root in site.getsitepackages():
    paths += sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib")))
print(":".join(paths))
PY
)
export LD_LIBRARY_PATH=$bundle/lib:/usr/local/cuda/lib64:${cuda_libs}:${LD_LIBRARY_PATH:-}
export K5_SOURCE_DIR=$PWD
nvidia-smi -L | tee "$out/device.txt"
"$bundle/k5_gpu_tests" --gtest_brief=1 2>&1 | tee "$out/gpu-tests.txt"
python3 tools/golden/torch_random_cuda.py "$out/torch_cuda_rng.safetensors" &&
  K5_TORCH_CUDA_GOLDEN="$out/torch_cuda_rng.safetensors" "$bundle/k5_gpu_tests" --gtest_filter='CudaGolden.*' 2>&1 |
  tee "$out/torch-cuda-rng.txt"
rm -f "$out/torch_cuda_rng.safetensors"
