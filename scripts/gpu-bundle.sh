#!/usr/bin/env bash
# Prepares what a session sends to the GPU machine of the `device` tool, which has nvcc, CMake and PyTorch but
# not k5's Debian libraries: k5_gpu_tests and bench_dit built here (sm_80 and sm_90a), the shared
# libraries they load that such a machine lacks (oneDNN and its OpenMP/OpenCL, yaml-cpp; the CUDA libraries are
# there), and the official configs of the DiT timings.
#   scripts/gpu-bundle.sh [BUILD_DIR]   -> .gpu-bundle/ (ignored through .git/info/exclude)
# Then, with the device tool: run `scripts/gpu-check.sh` with carry [".gpu-bundle"].
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DK5_CUDA=ON >/dev/null
cmake --build "$build" --target k5_gpu_tests bench_dit
rm -rf .gpu-bundle
mkdir -p .gpu-bundle/lib
cp "$build/tests/k5_gpu_tests" "$build/bench/bench_dit" .gpu-bundle/
strip .gpu-bundle/k5_gpu_tests .gpu-bundle/bench_dit
# Everything they link except glibc, the C++ runtime and CUDA's own libraries.
ldd .gpu-bundle/k5_gpu_tests .gpu-bundle/bench_dit | awk '/=> \// {print $3}' | sort -u |
  grep -v -E '/(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so|/libcu' |
  xargs -r -I{} cp -L {} .gpu-bundle/lib/
# The official configs the DiT timings use (../shared does not travel to the GPU machine).
mkdir -p .gpu-bundle/configs
for name in k5_lite_t2v_5s_sft_sd k5_lite_t2v_10s_sft_sd k5_lite_t2i_sft_hd; do
  cp ../shared/k5-official/configs/$name.yaml .gpu-bundle/configs/
done
grep -qx '/.gpu-bundle/' .git/info/exclude 2>/dev/null || echo '/.gpu-bundle/' >>.git/info/exclude
du -sh .gpu-bundle
ls .gpu-bundle .gpu-bundle/lib
