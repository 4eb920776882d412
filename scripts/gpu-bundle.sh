#!/usr/bin/env bash
# Prepares what a session sends to the GPU machine of the `device` tool, which has nvcc, CMake and PyTorch but
# not k5's Debian libraries: k5_gpu_tests, bench_dit and bench_cuda_attention built here (sm_80 and sm_90a), the
# shared libraries they load that such a machine lacks (oneDNN and its OpenMP/OpenCL, yaml-cpp, ICU; the CUDA
# libraries are there), the official configs of the DiT timings and the Qwen2.5 tokenizer the text-encoder GPU
# tests use, in .gpu-bundle/bundle.tar.xz (~20 MB); and the k5 binary with the libraries it needs beyond those
# (FFmpeg's closure, ~130 MB unpacked) in .gpu-bundle-k5/k5.tar.xz (~41 MB), for scripts/gpu-e2e.sh. A call sends
# at most 64 MiB with the repository's own ~15 MB, so the two travel in two calls: gpu-check.sh with .gpu-bundle,
# then gpu-e2e.sh with .gpu-bundle-k5 on the still-warm machine. Also the official code's kandinsky/ package, which
# bench/torch_dit_official.py times beside bench_dit there (read from a checkout of kandinskylab/kandinsky-5 at
# bundle time, never committed to k5).
#   scripts/gpu-bundle.sh [BUILD_DIR] [OFFICIAL_REPO]   -> .gpu-bundle/, .gpu-bundle-k5/ (ignored through
#                                                          .git/info/exclude)
# OFFICIAL_REPO: a checkout or a bare git directory of the official repository (default: the library's mirror).
# Then, with the device tool: run `scripts/gpu-check.sh` with carry [".gpu-bundle"].
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
official=${2:-/work/.mirror/kandinskylab+kandinsky-5/repo}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DK5_CUDA=ON >/dev/null
cmake --build "$build" --target k5 k5_gpu_tests bench_dit bench_cuda_attention
stage=$(mktemp -d) cli_stage=$(mktemp -d)
trap 'rm -rf "$stage" "$cli_stage"' EXIT
mkdir -p "$stage/lib" "$stage/configs" "$stage/shared/tokenizers/qwen2.5"
cp "$build/tests/k5_gpu_tests" "$build/bench/bench_dit" "$build/bench/bench_cuda_attention" "$stage/"
strip "$stage/k5_gpu_tests" "$stage/bench_dit" "$stage/bench_cuda_attention"
# Everything they link except glibc, the C++ runtime and CUDA's own libraries.
needed_libraries() {
  ldd "$@" | awk '/=> \// {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so|/libcu'
}
needed_libraries "$stage/k5_gpu_tests" "$stage/bench_dit" "$stage/bench_cuda_attention" | xargs -r -I{} cp -L {} "$stage/lib/"
# k5 and what it needs beyond the first archive's libraries.
mkdir -p "$cli_stage/lib"
cp "$build/k5" "$cli_stage/" && strip "$cli_stage/k5"
needed_libraries "$cli_stage/k5" | while read -r library; do
  [ -f "$stage/lib/$(basename "$library")" ] || cp -L "$library" "$cli_stage/lib/"
done
for name in k5_lite_t2v_5s_sft_sd k5_lite_t2v_10s_sft_sd k5_lite_t2i_sft_hd; do
  cp ../shared/k5-official/configs/$name.yaml "$stage/configs/"
done
cp ../shared/tokenizers/qwen2.5/tokenizer.json "$stage/shared/tokenizers/qwen2.5/"
mkdir -p "$stage/official"
if [ -d "$official/kandinsky" ]; then
  cp -r "$official/kandinsky" "$stage/official/"
else
  mkdir -p "$stage/official/kandinsky"  # the subtree alone: a mirror may lack blobs elsewhere (large assets)
  git -C "$official" archive HEAD:kandinsky | tar -C "$stage/official/kandinsky" -xf -
fi
[ -f "$stage/official/kandinsky/models/dit.py" ] || { echo "no official kandinsky/ package in $official" >&2; exit 1; }
rm -rf .gpu-bundle .gpu-bundle-k5
mkdir -p .gpu-bundle .gpu-bundle-k5
tar -C "$stage" -cf - . | xz -T0 -6 >.gpu-bundle/bundle.tar.xz
tar -C "$cli_stage" -cf - . | xz -T0 -9 >.gpu-bundle-k5/k5.tar.xz
for folder in /.gpu-bundle/ /.gpu-bundle-k5/; do
  grep -qx "$folder" .git/info/exclude 2>/dev/null || echo "$folder" >>.git/info/exclude
done
du -sh "$stage" "$cli_stage" .gpu-bundle/bundle.tar.xz .gpu-bundle-k5/k5.tar.xz
# What each call sends: the repository's tracked files and the carried folder, at most 64 MiB.
tracked=$(git ls-files -z | xargs -0 cat | wc -c)
for archive in .gpu-bundle/bundle.tar.xz .gpu-bundle-k5/k5.tar.xz; do
  total=$((tracked + $(stat -c %s "$archive")))
  echo "a call carrying $(dirname "$archive"): $((total >> 20)) MiB of 64"
  ((total <= 64 << 20)) || { echo "over the device tool's 64 MiB" >&2; exit 1; }
done
