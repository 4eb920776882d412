#!/usr/bin/env bash
# Runs on the GPU machine (device tool) in the repository root, with .gpu-bundle carried (scripts/gpu-bundle.sh):
# every GPU test (each CUDA op, the CrossDiT forward and the text encoders against the CPU / the goldens; the
# --device cuda CLI tests skip: the bundle has no k5 binary), k5's copy of torch's
# CUDA generator against torch there (tools/golden/torch_random_cuda.py), then one DiT forward per shape of
# issue 6 with random full-size weights (Video Lite 5 s dense, 10 s NABLA, Image Lite 1024x1024; bf16; a step
# with guidance is two forwards). Logs go to $OUT (or /tmp).
set -uo pipefail
out=${OUT:-/tmp/k5-gpu-check}
mkdir -p "$out"
bundle=/tmp/k5-bundle
rm -rf "$bundle" && mkdir -p "$bundle" && xz -dc .gpu-bundle/bundle.tar.xz | tar -C "$bundle" -xf - || exit 1
cuda_libs=$(python3 - <<'PY' 2>/dev/null
import glob, os, site
paths = []
for root in site.getsitepackages():
    paths += sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib")))
print(":".join(paths))
PY
)
export LD_LIBRARY_PATH=$bundle/lib:/usr/local/cuda/lib64:${cuda_libs}:${LD_LIBRARY_PATH:-}
export K5_SOURCE_DIR=$PWD K5_SHARED_DIR=$bundle/shared
nvidia-smi -L | tee "$out/device.txt"
"$bundle/k5_gpu_tests" --gtest_brief=1 2>&1 | tee "$out/gpu-tests.txt"
python3 tools/golden/torch_random_cuda.py "$out/torch_cuda_rng.safetensors" &&
  K5_TORCH_CUDA_GOLDEN="$out/torch_cuda_rng.safetensors" "$bundle/k5_gpu_tests" --gtest_filter='CudaGolden.*' 2>&1 |
  tee "$out/torch-cuda-rng.txt"
rm -f "$out/torch_cuda_rng.safetensors"
for shape in "k5_lite_t2v_5s_sft_sd 31 64 96" "k5_lite_t2v_10s_sft_sd 61 64 96" "k5_lite_t2i_sft_hd 1 128 128"; do
  set -- $shape
  timeout 240 "$bundle/bench_dit" "$bundle/configs/$1.yaml" "/tmp/$1.safetensors" "$2" "$3" "$4" 100 bf16 16 3 auto \
    cuda 2>&1 | sed "s/^/$1 /"
done | tee "$out/dit-bench.txt"
