"""The seeds' recipe as the seed posts run it: the time-to-accuracy baseline for ``time_to_accuracy.py``.

ResNet-18 (the same layout as ours, 11,173,962 parameters), float32 eager, cuDNN autotuning on, batch 128 from
torchvision ``CIFAR10`` + PIL transforms + ``DataLoader`` (4 workers), SGD lr 0.1, momentum 0.9, weight decay
5e-4, ``ReduceLROnPlateau(threshold=0.1, patience=3)`` stepped on the epoch's summed training loss, 50 epochs,
``loss.item()`` and the accuracy read back after every step, the test set evaluated after every epoch. (The
seed post wraps the model in ``nn.DataParallel``, a pass-through on one GPU, and augments with the flip only;
the crop added here makes the baseline stronger.) Needs torchvision: run it in a benchmark environment:

    python benchmarks/seeds_baseline.py DATA_DIR --device cuda --json baseline.json

``elapsed_seconds`` of an epoch counts its training and its test pass, from the first training step on;
``wall_seconds`` is the wall clock since then, earlier epochs' JSON writes included (as ``resnet-cifar train``'s
metrics.csv counts its saves); the datasets and the model are built before the clock starts. The JSON
is rewritten (atomically) after every epoch, so a run stopped by a time limit still leaves the epochs it finished.
"""
from __future__ import annotations

import argparse
import time
from itertools import islice
from pathlib import Path
from typing import Iterable

import torch
from seeds_way import seeds_loader
from torch import nn, optim

from resnet_cifar.files import atomic_write_json
from resnet_cifar.models import create_model


def train_epoch(net: nn.Module, batches: Iterable, optimizer: optim.Optimizer, device: torch.device
                ) -> tuple[float, int, float]:
    """One epoch the seeds' way; returns the summed loss (what their plateau schedule watches), the number of
    batches and the accuracy."""
    net.train()
    criterion = nn.CrossEntropyLoss()
    loss_sum, correct, seen, steps = 0.0, 0, 0, 0
    for images, labels in batches:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        outputs = net(images)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item()
        correct += outputs.argmax(1).eq(labels).sum().item()
        seen += labels.size(0)
        steps += 1
    return loss_sum, steps, correct / seen


@torch.no_grad()
def evaluate(net: nn.Module, batches: Iterable, device: torch.device) -> tuple[float, float]:
    """Mean loss and accuracy over ``batches``."""
    net.eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    loss_sum, correct, seen = 0.0, 0, 0
    for images, labels in batches:
        images, labels = images.to(device), labels.to(device)
        outputs = net(images)
        loss_sum += criterion(outputs, labels).item()
        correct += outputs.argmax(1).eq(labels).sum().item()
        seen += labels.size(0)
    return loss_sum / seen, correct / seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="folder holding cifar-10-batches-py/")
    parser.add_argument("--device", default="cuda", help="(default cuda)")
    parser.add_argument("--epochs", type=int, default=50, help="(default 50, as the seed post)")
    parser.add_argument("--workers", type=int, default=4, help="DataLoader processes (default 4, as the seed post)")
    parser.add_argument("--max-batches", type=int, help="a quick check: at most this many batches per epoch and test")
    parser.add_argument("--json", required=True, help="write the settings and one row per epoch here")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    train_loader = seeds_loader(args.data_dir, train=True, batch_size=128, workers=args.workers)
    test_loader = seeds_loader(args.data_dir, train=False, batch_size=100, workers=args.workers)
    net = create_model("resnet18").to(device)
    optimizer = optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    scheduler = optim.lr_scheduler.ReduceLROnPlateau(optimizer, threshold=0.1, patience=3)
    rows, elapsed, clock_start = [], 0.0, time.perf_counter()
    report = {"recipe": "seeds", "model": "resnet18", "device": str(device), "torch": torch.__version__,
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
              "workers": args.workers, "max_batches": args.max_batches, "epochs": args.epochs, "rows": rows}
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        loss_sum, steps, train_acc = train_epoch(net, islice(train_loader, args.max_batches), optimizer, device)
        test_loss, test_acc = evaluate(net, islice(test_loader, args.max_batches), device)
        elapsed += time.perf_counter() - start
        rows.append({"epoch": epoch, "train_loss": loss_sum / steps, "train_acc": train_acc,
                     "test_loss": test_loss, "test_acc": test_acc, "lr": optimizer.param_groups[0]["lr"],
                     "elapsed_seconds": elapsed, "wall_seconds": time.perf_counter() - clock_start})
        scheduler.step(loss_sum)
        print(f"epoch {epoch}/{args.epochs}  train loss {rows[-1]['train_loss']:.4f} acc {train_acc:.2%}  "
              f"test loss {test_loss:.4f} acc {test_acc:.2%}  lr {rows[-1]['lr']:.4g}  {elapsed:.1f}s", flush=True)
        atomic_write_json(Path(args.json), report)


if __name__ == "__main__":
    main()
