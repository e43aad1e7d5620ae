#!/usr/bin/env bash
# On the GPU machine (its image has torch, torchvision, matplotlib, tqdm, safetensors; gpu/ carried from
# benchmarks/gpu/prepare.sh): run one or more steps, each writing its results under $OUT (default ./gpu-out).
#   bash benchmarks/gpu/run.sh STEP...
#   tests     the GPU tests (tests/test_gpu.py; every one runs, a failure does not stop the others)
#   bench     resnet-cifar bench on CUDA (ResNet-18 and ResNet-20, batch 128 and 512, 20 timed steps each; the
#             step training runs: fused SGD, cuDNN autotuning; compile's effect shows in compiled against fast)
#   fast      resnet-cifar train --recipe fast on the full CIFAR-10 copy, then eval with TTA
#   compiled  the same with --compile: does compiling pay back its own time within the run?
#   graphs    the same with --compile-mode reduce-overhead (CUDA graphs): do they pay?
#   ema       the fast recipe with --ema
#   default   `resnet-cifar train` with no options: what a user gets (30 epochs)
#   baseline  the seeds' recipe, 50 epochs (benchmarks/seeds_baseline.py)
#   airbench  airbench94, 95 and 96 (the record line, unmodified) on the same data: benchmarks/airbench_peer.py
#   speedrun  our --recipe speedrun (its ResNet-9) and ResNet-18 by the same recipe, each with eval --tta; with
#             airbench in the same call (`airbench speedrun`, estimated at 5-6 minutes on an H100, not yet timed),
#             time_to_accuracy.py then compares each with airbench94's run on the same copy
#   paper     the paper's table 6 and figure 6 in one call: ResNet-20/32/44/56/110 and plain-20/32/44/56 by the
#             paper's recipe (182 epochs, 45k/5k split), all nine at once on the one GPU (`experiment degradation
#             --jobs 8` beside `experiment paper --depths 110`; under CUDA MPS where the image has it, so their
#             kernels overlap), each with PAPER_OPTIONS (default --compile --compile-mode reduce-overhead: CUDA
#             graphs, as these nets are launch-bound at batch 128). Stopped by SIGTERM after PAPER_SECONDS (default
#             540) with a checkpoint in every run: the same step in the next call, on the still-warm machine,
#             continues them. Then the tables, figures and a fitted temperature per ResNet: $OUT/paper.tgz (run
#             folders without checkpoints, weights included)
#   zoo       the shipped weights' non-paper runs (issue 51): wrn-16-4 and preact-resnet18 by the default recipe,
#             resnet9-w32 by speedrun, each with --val-split 5000 and calibrated, trained one after the other:
#             $OUT/zoo.tgz (their folders without checkpoints), shipped here by scripts/ship_pretrained.py
#   ddp       DistributedDataParallel over NCCL on 2 GPUs against 1 (skipped with fewer than 2 GPUs)
#   faithfulness  deletion curves of every explanation method for the ResNet-18 of the fast step (trained first
#             when that step has not run in this call), pixel by pixel and by 4x4 patches, 1,000 test images
#             (benchmarks/explain_faithfulness.py): $OUT/faithfulness.tgz
#   robustness  a ResNet-18 by the fast recipe with 5,000 validation images held out, calibrated on them, then
#             `eval --corruptions` (all 19, severities 1-5, the sets made by every CPU core) relative to the shipped
#             resnet20, and the shipped resnet20 on the same sets (cache warm): $OUT/robustness.tgz
# A call of the device tool may run up to 10 minutes: on an H100, `tests bench fast`, then `baseline`, then
# `default compiled graphs` fit one call each. Afterwards, on any machine, `benchmarks/gpu/collect.py` turns the
# fetched folders into one JSON and figure under benchmarks/results/.
# DEVICE=cpu SMOKE=1 runs every step in miniature (compiling on the CPU), to check the script itself without a GPU.
# TRAIN_OPTIONS adds options to the training steps, e.g. TRAIN_OPTIONS="--epochs 30" bash benchmarks/gpu/run.sh fast
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu-out}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
if [ -n "${SMOKE:-}" ]; then
    bench_args=(--models resnet20 --batch-sizes 32 --steps 1 --warmup 0)
    train_args=(--model resnet20 --epochs 1 --train-subset 256 --batch-size 64)
    baseline_args=(--epochs 1 --max-batches 2 --workers 2)
    FAITHFULNESS_OPTIONS=${FAITHFULNESS_OPTIONS:-"--images 20 --steps 2 --methods gradcam"}
    paper_args=(--epochs 1 --train-subset 256 --val-split 100)
    PAPER_OPTIONS=${PAPER_OPTIONS:-}
    CORRUPTION_OPTIONS=${CORRUPTION_OPTIONS:-"fog --severities 1"}
else
    bench_args=(--models resnet18 resnet20 --batch-sizes 128 512 --steps 20 --warmup 5)
    train_args=()
    baseline_args=()
    paper_args=()
fi
read -r -a paper_options <<< "${PAPER_OPTIONS---compile --compile-mode reduce-overhead}"
read -r -a extra_train_args <<< "${TRAIN_OPTIONS:-}"
train_args+=("${extra_train_args[@]}")
python3 -m pip install --quiet --no-index --no-deps --upgrade --target /tmp/site gpu/whl/*.whl
export PYTHONPATH="/tmp/site:$PWD/src" PYTHONUNBUFFERED=1
data=/tmp/cifar-data
[ -f $data/cifar-10-batches-py/test_batch ] || python3 gpu/cifar10_from_jpeg_tar.py gpu/cifar10-jpeg.tar.xz $data
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > "$OUT/gpu.txt" || true
python3 - >> "$OUT/gpu.txt" <<'PY'
import importlib.util, os, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "GPUs", torch.cuda.device_count(), "CPUs", os.cpu_count())
if importlib.util.find_spec("torchvision"):
    import torchvision
    print("torchvision", torchvision.__version__)
PY
train_recipe() {  # NAME RECIPE [OPTIONS...]: train on the full data; its log, metrics and a TTA evaluation to $OUT
    local name=$1 recipe=$2
    shift 2
    rm -rf "/tmp/runs/$name"
    python3 -m resnet_cifar train --recipe "$recipe" --data-dir $data --no-download --device "$DEVICE" \
        --out "/tmp/runs/$name" "${train_args[@]}" "$@" 2>&1 | tr '\r' '\n' | grep -v "batch/s\|s/batch" \
        | tee "$OUT/$name.log"
    cp "/tmp/runs/$name/metrics.csv" "$OUT/$name-metrics.csv"
    python3 -m resnet_cifar eval "/tmp/runs/$name" --tta --data-dir $data --no-download 2>&1 | tee "$OUT/$name-eval.txt"
}

for step in "$@"; do
    case $step in
    tests)
        python3 -m pytest -q -rA tests/test_gpu.py 2>&1 | tee "$OUT/tests.log" || true ;;
    bench)
        python3 -m resnet_cifar bench --device "$DEVICE" "${bench_args[@]}" --json > "$OUT/bench.json"
        python3 - "$OUT/bench.json" <<'PY' | tee "$OUT/bench.txt"
import json, sys
from resnet_cifar.bench import format_report
print(format_report(json.load(open(sys.argv[1]))))
PY
        ;;
    fast)
        train_recipe fast fast ;;
    compiled)
        train_recipe compiled fast --compile ;;
    graphs)
        train_recipe graphs fast --compile --compile-mode reduce-overhead ;;
    ema)
        train_recipe ema fast --ema ;;
    default)
        train_recipe default default ;;
    speedrun)
        train_recipe speedrun speedrun
        train_recipe speedrun-resnet18 speedrun --model resnet18 ;;
    baseline)
        python3 benchmarks/seeds_baseline.py $data --device "$DEVICE" --json "$OUT/baseline.json" \
            "${baseline_args[@]}" 2>&1 | tee "$OUT/baseline.log" ;;
    airbench)
        python3 benchmarks/airbench_peer.py $data --out "$OUT/airbench" --runs "${AIRBENCH_RUNS:-3}" \
            --variants ${AIRBENCH_VARIANTS:-94 95 96} 2>&1 | tee "$OUT/airbench.log"
        rm -rf "$OUT/airbench/work" ;;
    faithfulness)
        [ -f /tmp/runs/fast/model.safetensors ] || train_recipe fast fast
        mkdir -p "$OUT/faithfulness"
        for patch in 1 4; do
            python3 benchmarks/explain_faithfulness.py /tmp/runs/fast --data-dir $data --device "$DEVICE" \
                --patch $patch ${FAITHFULNESS_OPTIONS:-} --json "$OUT/faithfulness/fast-patch$patch.json" \
                --figure "$OUT/faithfulness/fast-patch$patch.png" 2>&1 | tee "$OUT/faithfulness/patch$patch.log"
        done
        tar -czf "$OUT/faithfulness.tgz" -C "$OUT" faithfulness && rm -rf "$OUT/faithfulness" ;;
    robustness)
        train_recipe calibrated fast --val-split 5000
        mkdir -p "$OUT/robustness"
        python3 -m resnet_cifar calibrate /tmp/runs/calibrated --json 2>&1 | tee "$OUT/robustness/calibrate.json" || true
        shipped=$(python3 -c 'from resnet_cifar.models.weights import pretrained_weights as w; print(w("resnet20"))')
        for model in calibrated shipped; do
            source=(/tmp/runs/calibrated --reference "$shipped")
            [ $model = shipped ] && source=(--pretrained resnet20)
            start=$SECONDS
            python3 -m resnet_cifar eval "${source[@]}" --data-dir $data --no-download --device "$DEVICE" \
                --out "$OUT/robustness/$model" --corruptions ${CORRUPTION_OPTIONS:-} 2>&1 | tr '\r' '\n' \
                | grep -v "set/s\|s/set" | tee "$OUT/robustness/$model.txt"
            echo "seconds $((SECONDS - start))" | tee -a "$OUT/robustness/$model.txt"
        done
        tar -czf "$OUT/robustness.tgz" -C "$OUT" robustness && rm -rf "$OUT/robustness" ;;
    paper)
        paper_runs=/tmp/runs/paper
        mkdir -p $paper_runs "$OUT/paper"
        if [ "$DEVICE" = cuda ] && command -v nvidia-cuda-mps-control >/dev/null; then
            export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
            mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
            nvidia-cuda-mps-control -d 2>/dev/null && echo "MPS on" | tee "$OUT/paper/mps.txt" || true
        fi
        experiment=(--data-dir $data --no-download --device "$DEVICE" --out $paper_runs --quiet "${paper_args[@]}"
                    "${paper_options[@]}")
        start=$SECONDS
        set +e
        timeout --preserve-status --signal=TERM --kill-after=120 "${PAPER_SECONDS:-540}" python3 -m resnet_cifar experiment paper \
            --depths 110 "${experiment[@]}" > "$OUT/paper/resnet110.log" 2>&1 &
        timeout --preserve-status --signal=TERM --kill-after=120 "${PAPER_SECONDS:-540}" python3 -m resnet_cifar experiment \
            degradation --depths 20 32 44 56 --jobs 8 "${experiment[@]}" > "$OUT/paper/degradation.log" 2>&1
        finished=$?
        wait $!
        finished=$((finished + $?))
        set -e
        echo "training: $((SECONDS - start)) s, exit codes sum $finished (143: stopped at the deadline, saved)" \
            | tee "$OUT/paper/seconds.txt"
        if [ $finished = 0 ]; then
            python3 -m resnet_cifar experiment paper "${experiment[@]}"
            python3 -m resnet_cifar experiment degradation "${experiment[@]}"
            cat $paper_runs/paper.md $paper_runs/degradation.md | tee "$OUT/paper/tables.md"
            for run in $paper_runs/resnet*/; do
                python3 -m resnet_cifar calibrate "$run" --device "$DEVICE" --data-dir $data --no-download \
                    2>&1 | tee "$OUT/paper/calibrate-$(basename "$run").txt" || true
            done
        fi
        [ -f "$OUT/paper/mps.txt" ] && { echo quit | nvidia-cuda-mps-control || true; }
        tar -czf "$OUT/paper.tgz" -C /tmp/runs --exclude='*.pt' --exclude='.lock' paper ;;
    zoo)
        for entry in "wrn-16-4 default" "preact-resnet18 default" "resnet9-w32 speedrun"; do
            read -r model recipe <<< "$entry"
            train_recipe "zoo-$model" "$recipe" --model "$model" --val-split 5000
            python3 -m resnet_cifar calibrate "/tmp/runs/zoo-$model" --device "$DEVICE" --data-dir $data \
                --no-download 2>&1 | tee "$OUT/zoo-$model-calibrate.txt"
        done
        tar -czf "$OUT/zoo.tgz" -C /tmp/runs --exclude='*.pt' --exclude='.lock' $(cd /tmp/runs && ls -d zoo-*) ;;
    ddp)
        if [ "$(python3 -c 'import torch; print(torch.cuda.device_count())')" -lt 2 ]; then
            echo "ddp: skipped, fewer than 2 GPUs" | tee "$OUT/ddp.log"
        else
            python3 -m pytest -q -rA tests/test_gpu_ddp.py 2>&1 | tee "$OUT/ddp.log" || true
        fi ;;
    *)
        echo "unknown step $step: choose tests, bench, fast, compiled, graphs, ema, default, speedrun, baseline," \
             "airbench, paper, zoo, ddp, faithfulness or robustness" >&2
        exit 2 ;;
    esac
done
