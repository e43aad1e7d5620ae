"""
Train and evaluate on the bundled sample
========================================

The package carries a small CIFAR-10 sample (1,000 training and 500 test images), so this tutorial trains a
ResNet-20 without downloading anything, then reads its curves, its per-class accuracy and its mistakes. On the
full dataset the same calls (``dataset="cifar10"``) reach about 88-92%.
"""

# %%
# Train
# -----
# A ``TrainConfig`` holds every setting of a run; ``train`` runs it into a folder and returns that folder. The
# same run from the command line is ``resnet-cifar train --model resnet20 --dataset cifar10-sample --epochs 15
# --batch-size 64 --device cpu --out RUN``.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from resnet_cifar import TrainConfig, evaluate, train

out = Path(tempfile.mkdtemp()) / "resnet20"
config = TrainConfig(model="resnet20", dataset="cifar10-sample", epochs=15, batch_size=64, lr=0.1, device="cpu",
                     out=str(out))
folder = train(config, quiet=True)
print(sorted(path.name for path in folder.iterdir() if not path.name.startswith(".")))

# %%
# The curves
# ----------
# ``curves.png`` holds loss, accuracy and learning rate against epoch; ``metrics.csv`` the same numbers, one row
# per epoch.
import csv

with open(folder / "metrics.csv") as f:
    rows = list(csv.DictReader(f))
print("last epoch:", {key: rows[-1][key] for key in ("epoch", "train_loss", "train_acc", "test_acc", "lr")})


def show(path: Path, size: tuple[float, float] = (10, 4)) -> None:
    """Display a figure the toolkit wrote."""
    plt.figure(figsize=size)
    plt.imshow(plt.imread(path))
    plt.axis("off")
    plt.show()


show(folder / "curves.png")

# %%
# Evaluate: overall and per class
# -------------------------------
# ``evaluate`` scores the run on the sample's test images and writes its figures beside the weights
# (``resnet-cifar eval RUN`` does the same).
results = evaluate(folder, device="cpu")
print(f"accuracy {results['accuracy']:.2%} on {results['images']} images")
for name, row in results["per_class"].items():
    print(f"  {name:12} {row['accuracy']:.2%}")

# %%
# The confusion matrix shows which classes it takes for which (rows: truth, columns: prediction).
show(folder / "confusion.png", (6, 6))

# %%
# The mistakes
# ------------
# Test images titled prediction (truth): here only the wrong ones, in red.
show(folder / "mistakes.png", (8, 8))
