#!/usr/bin/env bash
# Build the folder of wheels that benchmarks/gpu_check.sh installs on a bare GPU machine (one that has
# PyTorch with CUDA but nothing else of cglight's), and print its size against what the device tool carries.
#
#   benchmarks/gpu_wheels.sh [OUT=gpu-wheels] [PYTHON_VERSION=this python's, e.g. 3.11]
#
# The set: cglight (built here), then the requirements of what the check imports (fit, simulate,
# prepare: lightning, jsonargparse, omegaconf, torchmd-net, torch-geometric, warp-lang, h5py, matplotlib,
# openmm + OpenMM-CUDA-12, ... and theirs), pinned to the versions installed here, without torch and
# the packages that come with torch (nvidia-*, triton, sympy, networkx, jinja2, fsspec, filelock, ...).
# Binary wheels for manylinux x86_64 and PYTHON_VERSION; torchmd-net (an sdist) is built here. Files over
# PART_MIB are cut into PART_MIB pieces (gpu_check.sh joins them and checks SHA256SUMS).
set -euo pipefail
OUT=${1:-gpu-wheels}
PY=${2:-$(python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
PART_MIB=${PART_MIB:-60}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
PLATFORMS=(--platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_24_x86_64
           --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_34_x86_64 --platform any)
python - > "$OUT/requirements.txt" <<'PY'
"""name==version of every installed distribution the GPU check needs, without torch and what torch brings."""
from importlib.metadata import PackageNotFoundError, distribution
from packaging.requirements import Requirement

ROOTS = ["lightning", "jsonargparse", "omegaconf", "torchmd-net", "torch-geometric", "warp-lang", "h5py", "matplotlib",
         "openmm", "numpy", "tqdm", "docstring-parser", "typeshed-client"]
WITH_TORCH = {"torch", "triton", "sympy", "mpmath", "networkx", "jinja2", "markupsafe", "fsspec", "filelock",
              "typing-extensions", "setuptools"}
seen, todo = {}, list(ROOTS)
while todo:
    name = todo.pop().lower().replace("_", "-")
    if name in seen or name in WITH_TORCH or name.startswith("nvidia-"):
        continue
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        continue
    seen[name] = dist.version
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            todo.append(req.name)
for name, version in sorted(seen.items()):
    print(f"{name}=={version}")
PY
echo "OpenMM-CUDA-12==$(python -c 'import openmm; print(openmm.__version__)')" >> "$OUT/requirements.txt"
while read -r req; do
  case "$req" in
    torchmd-net==*) pip wheel --quiet --no-deps "$req" -w "$OUT" ;;
    *) pip download --quiet --no-deps --only-binary=:all: --python-version "$PY" "${PLATFORMS[@]}" -d "$OUT" "$req" ;;
  esac
done < "$OUT/requirements.txt"
pip wheel --quiet --no-deps "$ROOT" -w "$OUT"
(cd "$OUT" && sha256sum ./*.whl > SHA256SUMS)
for f in "$OUT"/*.whl; do
  if [ "$(stat -c %s "$f")" -gt $((PART_MIB * 1048576)) ]; then
    split -b "${PART_MIB}M" -d "$f" "$f.part-" && rm "$f"
  fi
done
total=$(du -cb "$OUT" | tail -1 | cut -f1)
echo "wheels for Python $PY in $OUT: $(ls "$OUT" | grep -c '\.whl$') wheels, $(ls "$OUT" | grep -c '\.part-') pieces," \
     "$((total / 1048576)) MiB in all"
ls -S -s --block-size=M "$OUT" | head -12
echo "the device tool carries at most 64 MiB and 8 paths per call: $(( (total + 62914559) / 62914560 )) calls of ${PART_MIB} MiB" \
     "(docs/gpu.md: how to carry them)"
