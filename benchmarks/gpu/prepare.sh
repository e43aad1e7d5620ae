#!/usr/bin/env bash
# On the development machine: fill the git-ignored folder gpu/ with what the GPU machine lacks and cannot
# fetch (it has no network): the CIFAR-10 archive and its rebuild script from ../shared, and the wheels of our
# dependencies missing from its image (torchinfo), airbench for the side-by-side step and captum (integrated
# gradients) for the faithfulness step. Then carry gpu/ to each call of benchmarks/gpu/run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p gpu/whl
install -m 0644 ../shared/data/cifar10-jpeg.tar.xz ../shared/tools/cifar10_from_jpeg_tar.py gpu/
python3 -m pip download --quiet --no-deps --only-binary=:all: -d gpu/whl torchinfo captum==0.9.0
python3 -m pip wheel --quiet --no-deps -w gpu/whl airbench==0.1.8  # an sdist on PyPI: built here, pure Python
du -sh gpu
