#!/usr/bin/env bash
# The GPU check from a bare GPU machine that has PyTorch (CUDA) but not cglight's other dependencies:
# install cglight and the rest from WHEELS (built by benchmarks/gpu_wheels.sh; nothing is downloaded),
# then run benchmarks/gpu_check.py (one table, under 8 minutes).
#
#   benchmarks/gpu_check.sh [WHEELS=gpu-wheels] [gpu_check.py options: --quick, --budget-s S, --skip ...]
set -euo pipefail
WHEELS=${1:-gpu-wheels}
shift || true
ROOT=$(cd "$(dirname "$0")/.." && pwd)
python -c 'import torch; print("torch", torch.__version__, "CUDA", torch.cuda.is_available())' \
  || { echo "gpu_check.sh: needs PyTorch installed" >&2; exit 2; }
if ! python -c 'import cglight' 2>/dev/null; then
  [ -d "$WHEELS" ] || { echo "gpu_check.sh: no wheel folder $WHEELS (build it with benchmarks/gpu_wheels.sh)" >&2; exit 2; }
  for first in "$WHEELS"/*.whl.part-00; do  # join the pieces of the wheels cut to fit the carry limit
    [ -e "$first" ] || continue
    cat "${first%.part-00}".part-* > "${first%.part-00}" && rm "${first%.part-00}".part-*
  done
  (cd "$WHEELS" && sha256sum --check --quiet SHA256SUMS) || { echo "gpu_check.sh: a wheel in $WHEELS is damaged" >&2; exit 2; }
  # cglight without its full requirement list (wandb, deeptime, mdtraj: not used by the check), then what the check needs
  pip install --no-index --find-links "$WHEELS" --no-deps cglight
  pip install --no-index --find-links "$WHEELS" -r "$WHEELS/requirements.txt"
fi
cd "$ROOT" && CGLIGHT_PROGRESS=0 exec python benchmarks/gpu_check.py "$@"
