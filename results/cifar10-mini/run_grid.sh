#!/usr/bin/env bash
# The published cifar10-mini grid (issue 3, item 7): {sym 0.2, sym 0.5, sym 0.8, asym 0.4} x {lp, fft, turn,
# coteaching, dividemix}, packaged EfficientNet-Lite0, 64 px, seed 0, noise seed 0, every method at its default
# budget (10 epochs of training on images; lp's 50 epochs run on cached features).
#
# usage: results/cifar10-mini/run_grid.sh [DATA_ROOT] [OUT] [PARALLEL]
#   DATA_ROOT  directory holding cifar-10-batches-py (default ../shared/data/cifar10-mini)
#   OUT        output directory (default results/cifar10-mini/runs)
#   PARALLEL   runs at a time (default 1; on one GPU, 5 keep it busy)
# Runs already done in OUT are skipped (run ids are hashes of the resolved configs), so the grid resumes.
set -u
DATA=${1:-../shared/data/cifar10-mini}
OUT=${2:-results/cifar10-mini/runs}
PARALLEL=${3:-1}
LNLBENCH=${LNLBENCH:-lnlbench}
export DATA OUT LNLBENCH
for method in dividemix coteaching fft turn lp; do       # longest first, so parallel slots drain evenly
  for setting in "sym 0.2" "sym 0.5" "sym 0.8" "asym 0.4"; do
    echo "$method $setting"
  done
done | xargs -P "$PARALLEL" -L1 sh -c '
  $LNLBENCH run --dataset cifar10 --data-root "$DATA" --noise "$1" --rate "$2" --method "$0" \
    --image-size 64 --seed 0 --noise-seed 0 --out "$OUT" > "$OUT.$0.$1.$2.log" 2>&1
  echo "$0 $1 $2: exit $? $(tail -2 "$OUT.$0.$1.$2.log" | head -1)"'
