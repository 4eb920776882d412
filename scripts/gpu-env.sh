# Sourced by scripts/gpu-check.sh and scripts/gpu-e2e.sh on the GPU machine, in the repository root with
# .gpu-bundle carried (scripts/gpu-bundle.sh): unpacks the bundle into $bundle (each archive once per machine) and
# sets the library path (the bundle's libraries, CUDA's, the pip wheels' nvidia/*/lib) and k5's test paths.
bundle=/tmp/k5-bundle
mkdir -p "$bundle"
for archive in .gpu-bundle/*.tar.xz; do
  stamp=$bundle/.unpacked-$(basename "$archive")-$(stat -c %s "$archive")
  [ -f "$stamp" ] && continue
  xz -dc "$archive" | tar -C "$bundle" -xf - || { echo "cannot unpack $archive" >&2; return 1; }
  touch "$stamp"
done
cuda_libs=$(python3 - <<'PY' 2>/dev/null
import glob, os, site
paths = []
for root in site.getsitepackages():
    paths += sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib")))
print(":".join(paths))
PY
)
export LD_LIBRARY_PATH=$bundle/lib:/usr/local/cuda/lib64:${cuda_libs}:${LD_LIBRARY_PATH:-}
export K5_SOURCE_DIR=$PWD K5_SHARED_DIR=$bundle/shared PYTHONUNBUFFERED=1
[ -x "$bundle/k5" ] && export K5_BINARY=$bundle/k5  # the CLI's GPU tests run this copy
