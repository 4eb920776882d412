#!/usr/bin/env bash
# Installs every Debian package k5 needs to build, test and benchmark. Idempotent; safe to re-run.
set -euo pipefail
packages=(
  build-essential cmake pkg-config ninja-build
  # ocl-icd-opencl-dev: oneDNN's CMake package looks for OpenCL; apt only recommends it, and we skip recommends.
  libdnnl-dev ocl-icd-opencl-dev libopenblas-dev
  nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libpcre2-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libpng-dev libjpeg62-turbo-dev libwebp-dev
  libavformat-dev libavcodec-dev libavutil-dev libswscale-dev
  libcpp-httplib-dev
  libicu-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
