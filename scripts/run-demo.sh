#!/usr/bin/env bash
# Sets up, builds and runs the main job. Until trained demo weights exist, the build creates a tiny
# random-weight Kandinsky model folder (build/demo/) and k5 inspects it; with real weights, point
# `k5 info` (and, later, `k5 generate`) at the official weights folder instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target k5 demo_model
echo
echo "k5 info build/demo   (random weights: a tiny model in the official layout, not a trained one)"
./build/k5 info build/demo
