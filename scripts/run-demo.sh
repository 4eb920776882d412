#!/usr/bin/env bash
# Sets up, builds and runs the main job: `k5 generate` makes a short video and an image.
# Until trained demo weights exist, the build creates a tiny random-weight model folder in the official
# layout (build/demo/): the pipeline runs end to end in seconds, and the pictures are noise. With the
# official weights, point -m at the official folder instead (README: "Real models").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target k5 demo_model
mkdir -p build/demo/output
echo
echo "NOTE: build/demo holds RANDOM weights (a tiny model in the official layout, not a trained one):"
echo "      the files below show the pipeline working end to end; their pictures are meaningless."
echo
./build/k5 generate -m build/demo --config k5_tiny_t2v_5s \
  -p "A red fox runs through a snowy forest at dawn" --duration 1 -s 42 -o build/demo/output/demo.mp4
./build/k5 generate -m build/demo --config k5_tiny_t2i \
  -p "A watercolour portrait of a cat in a hat" -s 42 -o build/demo/output/demo.png
echo
echo "Done. Files: $(pwd)/build/demo/output/demo.mp4 (25 frames, 24 fps) and $(pwd)/build/demo/output/demo.png"
echo "(random weights: see README for running the official Kandinsky 5 checkpoints)"
