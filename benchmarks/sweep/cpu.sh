#!/usr/bin/env bash
# One real sweep on the CPU (issue 40): two `resnet-cifar sweep` processes of one thread each share a study of
# ResNet-20 on 10,000 images of the copy (5,000 more held out for validation), then the best trial's command and
# today's fast recipe train side by side (again one thread each, at the same time) and the sweep's report is written.
#
#   bash benchmarks/sweep/cpu.sh DATA_DIR OUT [TRIALS] [BUDGET_MINUTES] [TIMEOUT_SECONDS]
set -euo pipefail
data=${1:?usage: cpu.sh DATA_DIR OUT [TRIALS] [BUDGET_MINUTES] [TIMEOUT_SECONDS]}
out=${2:?usage: cpu.sh DATA_DIR OUT [TRIALS] [BUDGET_MINUTES] [TIMEOUT_SECONDS]}
trials=${3:-20}
budget=${4:-8}
timeout=${5:-3000}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
run_settings=(--model resnet20 --recipe fast --train-subset 10000 --val-split 5000 --data-dir "$data" --device cpu)
sweep=(resnet-cifar sweep --study r20 --out "$out/sweep" --space "$here/resnet20-space.yaml" --trials "$trials"
       --budget-minutes "$budget" --timeout "$timeout" --threads 1 "${run_settings[@]}")

"${sweep[@]}" > "$out/process-1.log" 2>&1 &
"${sweep[@]}" > "$out/process-2.log" 2>&1 &
wait
resnet-cifar sweep --report r20 --out "$out/sweep" > "$out/report.log"

# The best trial's command (as the report prints it) against the fast recipe, both trained now, side by side.
best=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["best"]["command"])' "$out/sweep/sweep.json")
eval "$best --out '$out/best' --threads 1 --quiet" > "$out/best.log" 2>&1 &
resnet-cifar train "${run_settings[@]}" --batch-size 128 --out "$out/fast" --threads 1 --quiet > "$out/fast.log" 2>&1 &
wait
echo "best trial retrained: $best"
tail -n 2 "$out/best/metrics.csv" "$out/fast/metrics.csv"
