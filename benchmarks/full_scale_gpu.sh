#!/usr/bin/env bash
# Full-scale cost run (issue 15, item 4): benchmarks/full_scale_gpu.yaml (TURN, FFT, co-teaching, DivideMix on all
# 50,000 CIFAR-10 images at 224 px, Lite0 packaged weights, one seed) through `lnlbench sweep`, stopped cleanly
# before --time-s and resumed by the next attempt: every record, checkpoint and cache lies under --out, so copying
# that folder back and passing it again (or --resume-from the copy) continues where the last attempt stopped (at
# the last finished epoch of each run). At the end, and after every attempt, OUT/summary.tsv lists each run's
# status, epochs, accuracy, wall-clock, GPU-hours, device and contention.
#
#   bash benchmarks/full_scale_gpu.sh --out "$OUT/full-scale" [--resume-from results/full-scale] [--time-s 540]
#   bash benchmarks/full_scale_gpu.sh --dry-run --out /tmp/fs   # CPU: the embedded digits at 16 px, one epoch
#
# --methods turn,fft runs only those of the sweep file (the test runs fft alone, to stay short).
# Data: --data-src DIR holding build_cifar10.py and cifar10-mini (default: ../shared/data, else shared/data).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
py="${PYTHON:-}"
if [[ -z "$py" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then py="$repo/.venv/bin/python"; else py=python3; fi
fi
out="" resume="" time_s=540 dry=0 data_src="" methods=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --resume-from) resume="$2"; shift 2 ;;
    --time-s) time_s="$2"; shift 2 ;;
    --data-src) data_src="$2"; shift 2 ;;
    --methods) methods="$2"; shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "full_scale_gpu.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -z "$out" ]]; then echo "full_scale_gpu.sh: --out DIR is required (e.g. --out \"\$OUT/full-scale\")" >&2; exit 2; fi
if ! [[ "$time_s" =~ ^[0-9]+$ ]] || (( time_s < 30 )); then
  echo "full_scale_gpu.sh: --time-s must be a whole number of seconds, at least 30 (got $time_s)" >&2; exit 2
fi
if [[ -z "$data_src" ]]; then
  for d in "$repo/../shared/data" "$repo/shared/data"; do [[ -d "$d/cifar10-mini" ]] && { data_src="$d"; break; }; done
fi
if (( ! dry )) && [[ -z "$data_src" || ! -d "$data_src/cifar10-mini" ]]; then
  echo "full_scale_gpu.sh: no shared data (cifar10-mini, build_cifar10.py) found; pass --data-src DIR" >&2; exit 2
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
if [[ -n "$resume" ]]; then
  if [[ ! -d "$resume" ]]; then echo "full_scale_gpu.sh: --resume-from $resume is not a folder" >&2; exit 2; fi
  if [[ "$(cd "$resume" && pwd)" != "$out" ]]; then
    cp -a "$resume/." "$out/"   # records, checkpoints and caches of the earlier attempts
  fi
fi
cd "$repo"
export PYTHONUNBUFFERED=1
if (( dry )); then
  data_root=""
  device=cpu
else
  data_root="$out/data/cifar10"
  device=cuda
  if [[ ! -d "$data_root/cifar-10-batches-py" ]]; then   # the full set, about 20 s; kept under OUT for the next attempt
    "$py" "$data_src/build_cifar10.py" "$data_root"
  fi
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
fi
# the sweep file with its data root (for the dry run: the embedded digits, 1,297 / 500 images, at 16 px, one epoch;
# DivideMix one warm-up and one training epoch)
"$py" - "$here/full_scale_gpu.yaml" "$out/sweep.yaml" "$data_root" "$dry" "$methods" <<'PY'
import sys, yaml
src, dst, root, dry, methods = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", sys.argv[5]
sweep = yaml.safe_load(open(src))
if methods:
    wanted = methods.split(",")
    known = [m["name"] for m in sweep["methods"]]
    if set(wanted) - set(known):
        sys.exit(f"full_scale_gpu.sh: --methods names {sorted(set(wanted) - set(known))}; the sweep file has {known}")
    sweep["methods"] = [m for m in sweep["methods"] if m["name"] in wanted]
sweep["datasets"][0]["data_root"] = root
if dry:
    sweep["name"] += "-dry-run"
    sweep["datasets"] = ["digits"]
    sweep["backbones"][0]["image_size"] = 16
    for m in sweep["methods"]:
        m["hparams"] = {"turn": {"ft_epochs": 1, "lp_epochs": 1}, "fft": {"epochs": 1}, "coteaching": {"epochs": 1},
                        "dividemix": {"epochs": 2, "warmup_epochs": 1}}[m["name"]]
open(dst, "w").write(yaml.safe_dump(sweep, sort_keys=False))
PY
status=0
timeout --signal=INT --kill-after=30 "$time_s" "$py" -m lnlbench.cli sweep "$out/sweep.yaml" --out "$out/runs" \
  --cache-dir "$out/cache" --device "$device" || status=$?
"$py" - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = ["method\tstatus\tepochs_logged\ttest_acc\twall_clock_s\tgpu_hours\tdevice\tcontended\trun_id"]
for path in sorted((out / "runs").glob("*/result.json")):
    r = json.loads(path.read_text())
    cost, metrics = r.get("cost", {}), r.get("metrics", {})
    rows.append("\t".join(str(x) for x in (
        r.get("method"), r.get("status"), len(metrics.get("history", [])), metrics.get("test_acc"),
        cost.get("wall_clock_s"), cost.get("gpu_hours"), cost.get("device"), cost.get("contended"), r.get("run_id"))))
started = sorted(p.parent.name for p in (out / "runs").glob("*/config.json")
                 if not (p.parent / "result.json").exists() and any(p.parent.glob("*")) and
                 ((p.parent / "checkpoints").exists() or (p.parent / "interrupted.json").exists()))
rows += [f"(unfinished, will resume)\t\t\t\t\t\t\t\t{run_id}" for run_id in started]
(out / "summary.tsv").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PY
if (( status == 124 || status == 130 )); then
  echo "full_scale_gpu.sh: stopped at the --time-s limit ($time_s s); run again with --resume-from this folder"
  exit 0
fi
exit "$status"
