"""
Why residual connections
========================

Stacking more layers should never make a network worse at fitting its training data: the extra layers could
learn to pass their input through. Yet a deeper *plain* network (convolutions, BatchNorm and ReLU, no shortcuts)
trains worse than a shallower one, the *degradation* problem of He et al. (2015). A residual block only has to
learn a change to its input, and the identity is where it starts; with shortcuts, depth helps again.

This tutorial shows it twice: in the runs the project measured on the full CIFAR-10 copy, and in a small live run.
"""

# %%
# What the project measured
# -------------------------
# ``resnet-cifar experiment degradation --epochs 25 --train-subset 10000`` trained plain-20, plain-56,
# ResNet-20 and ResNet-56 with the paper's recipe on 10,000 CIFAR-10 images on a 2-core CPU (BENCHMARKS.md,
# "Degradation on the CPU"). The 56-layer plain net ends far above the 20-layer one in *training* error: it is
# not overfitting, it fails to fit. Its residual twin fits far better.
import json
from pathlib import Path

import matplotlib.pyplot as plt

# The measured results lie in the checkout's benchmarks/results, found from wherever the tutorial runs.
RESULTS = next(folder / "benchmarks" / "results" for folder in (Path.cwd(), *Path.cwd().parents)
               if (folder / "benchmarks" / "results" / "degradation-cpu.json").is_file())
measured = json.loads((RESULTS / "degradation-cpu.json").read_text())["runs"]
for run in measured:
    print(f"{run['model']:9} training error {run['train_error']:.1%}, test error {run['test_error']:.1%} "
          f"after {run['epochs']} epochs")

plt.figure(figsize=(11, 4.2))
plt.imshow(plt.imread(RESULTS / "degradation-cpu.png"))
plt.axis("off")
plt.show()

# %%
# Why: the signal that reaches the first layers
# ---------------------------------------------
# One way to see the difference at once: the gradient that one batch sends back to the first convolution, in
# fresh plain and residual nets of growing depth. Through a plain stack with BatchNorm it grows explosively with
# depth (Yang et al. 2019 explain why BatchNorm does this to deep plain nets at initialisation), so the first
# steps of SGD throw the early layers about; in a residual net each block only adds to what the shortcut
# carries, and the gradient keeps about the same size at every depth.
import torch
import torch.nn.functional as F

from resnet_cifar import create_model, load_dataset

sample = load_dataset("cifar10-sample", "train")
images = (sample.images[:64].float() / 255 - 0.5) / 0.25
labels = sample.labels[:64]
torch.manual_seed(0)
for depth in (20, 56, 110):
    norms = []
    for kind in ("plain", "resnet"):
        net = create_model(f"{kind}{depth}")
        F.cross_entropy(net(images), labels).backward()
        norms.append(net.conv1.weight.grad.norm().item())
    print(f"depth {depth:3}: first-layer gradient norm plain {norms[0]:.4f}, residual {norms[1]:.4f}")

# %%
# A small live run
# ----------------
# The same comparison in miniature: the plain and the residual 56-layer net, 3 epochs on the 900 training images
# of the bundled sample left after holding out 100, in batches of 32 (84 steps), one seed.
# ``experiment degradation`` trains both with the paper's recipe and draws training error (dashed) and test
# error (bold) against training steps.
import tempfile

from resnet_cifar.experiments.degradation import degradation

out = Path(tempfile.mkdtemp())
runs = degradation([56], epochs=3, out=out, quiet=True, dataset="cifar10-sample", val_split=100, batch_size=32,
                   device="cpu")
for run in runs:
    print(f"{run.name:9} training error {1 - run.final['train_acc']:.1%}, "
          f"test error {1 - run.final['test_acc']:.1%}")

plt.figure(figsize=(11, 4.2))
plt.imshow(plt.imread(out / "degradation.png"))
plt.axis("off")
plt.show()

# %%
# 84 steps against the paper's 64,000: the curves are noisy and one seed decides little, but the plain
# net's training error typically stays well above its residual twin's. The full picture (every depth, the
# paper's recipe at full length, both halves of its figure 6) is what ``resnet-cifar experiment degradation``
# draws on a GPU; the Experiments guide shows how.
