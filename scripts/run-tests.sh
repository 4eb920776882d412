#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite: a Release build, then the same suite under
# AddressSanitizer + UndefinedBehaviorSanitizer. This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs" --timeout 900)

# Sanitizers: the same tests, minus the ones labelled `slow` (tests/CMakeLists.txt: too long instrumented, their
# code covered there by others). Benchmarks are not built here, nor the CUDA backend (the Release build above builds it
# when nvcc is present; its GPU tests skip without a device). -g1: line tables only, enough for the sanitizers' stack
# traces, and a build ~20% shorter than with full debug information.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DK5_SANITIZE=ON -DK5_BUILD_BENCH=OFF \
  -DK5_CUDA=OFF "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" >/dev/null
cmake --build build-asan -j "$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure -j "$jobs" --timeout 900 -LE slow)
