#!/usr/bin/env bash
# GPU check of lnlbench's training path (issue 7): ResNet-50 at 224 px on CIFAR-shaped data, lnlbench's fft step
# with and without each speed option; prints images/s, GPU busy fraction and TFLOP/s against the card's measured
# bf16 matmul rate. Under 8 minutes on one GPU (hard limit below); figures go to --out FILE.json as they come.
#
#   bash benchmarks/gpu_check.sh --out gpu_check.json
#   bash benchmarks/gpu_check.sh --data-root ../shared/data/cifar10-mini --out gpu_check.json
#   bash benchmarks/gpu_check.sh --quick --out q.json # under 3 minutes: torch.compile, the default, the DivideMix
#                                                     # step's host syncs and GPU-busy share, TURN's feature rate
#   bash benchmarks/gpu_check.sh --dry-run            # CPU, tiny model: checks the code paths
#
# Python: $PYTHON if set, else the checkout's .venv, else python3 (lnlbench need not be installed: the script
# imports it from this checkout).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
py="${PYTHON:-}"
if [[ -z "$py" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then py="$repo/.venv/bin/python"; else py=python3; fi
fi
cd "$repo"
export PYTHONUNBUFFERED=1
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader || true
fi
limit=480
for arg in "$@"; do [[ "$arg" == "--quick" ]] && limit=170; done
exec timeout --signal=INT --kill-after=10 "$limit" "$py" benchmarks/gpu_check.py "$@"
