#!/usr/bin/env bash
# A real CIFAR-10 run on the CPU: rebuild the full dataset from ../shared/data, train a ResNet-20 for a few
# epochs, evaluate it. Usage: bash benchmarks/real_cifar10_cpu.sh [EPOCHS] [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-5}
work=${2:-/tmp/resnet-cifar-bench}
shared=../shared
if [ ! -f "$work/data/cifar-10-batches-py/test_batch" ]; then
    .venv/bin/python "$shared/tools/cifar10_from_jpeg_tar.py" "$shared/data/cifar10-jpeg.tar.xz" "$work/data"
fi
run="$work/resnet20-cifar10-${epochs}ep-$(date +%Y%m%d-%H%M%S)"
.venv/bin/resnet-cifar train --model resnet20 --dataset cifar10 --data-dir "$work/data" --epochs "$epochs" \
    --batch-size 128 --lr 0.1 --device cpu --out "$run"
.venv/bin/resnet-cifar eval "$run" --tta
