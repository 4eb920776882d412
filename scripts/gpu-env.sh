# Sourced by scripts/gpu-check.sh and scripts/gpu-e2e.sh on the GPU machine, in the repository root. Unpacks what
# travelled (scripts/gpu-bundle.sh: .gpu-bundle/bundle.tar.xz, or .gpu-bundle-k5/k5.tar.xz) into build-gpu-bundle/
# (ignored, so it stays between calls while the machine is warm; each archive is unpacked once per content) and sets
# the library path (the bundle's libraries, CUDA's, the pip wheels' nvidia/*/lib) and k5's test paths.
bundle=$PWD/build-gpu-bundle
mkdir -p "$bundle"
for archive in .gpu-bundle/bundle.tar.xz .gpu-bundle-k5/k5.tar.xz; do
  [ -f "$archive" ] || continue
  stamp=$bundle/.unpacked-$(basename "$archive")
  digest=$(sha256sum "$archive" | cut -d' ' -f1)
  [ "$(cat "$stamp" 2>/dev/null)" = "$digest" ] && continue
  xz -dc "$archive" | tar -C "$bundle" -xf - || { echo "cannot unpack $archive" >&2; return 1; }
  echo "$digest" >"$stamp"
done
[ -f "$bundle/.unpacked-bundle.tar.xz" ] || {
  echo "no GPU bundle here: carry .gpu-bundle (scripts/gpu-bundle.sh) in this call or an earlier one on this machine" >&2
  return 1
}
library_path=$bundle/lib:/usr/local/cuda/lib64
for directory in $(python3 -c 'import glob, os, site
print(" ".join(p for root in site.getsitepackages() for p in sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib")))))' \
  2>/dev/null); do
  library_path=$library_path:$directory
done
export LD_LIBRARY_PATH=$library_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export K5_SOURCE_DIR=$PWD K5_SHARED_DIR=$bundle/shared PYTHONUNBUFFERED=1
if [ -x "$bundle/k5" ]; then
  export K5_BINARY=$bundle/k5  # the CLI's GPU tests run this copy (present after a gpu-e2e.sh call here)
fi
return 0
