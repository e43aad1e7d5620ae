"""Started by tests/core/test_distributed.py, alone or under torchrun, in float64 so that one process and
several agree to rounding: ``ranks`` trains a ``Run`` and saves every rank's weights to OUT/plain/rankR.pt, and
with ``--sync-bn`` trains a second one with synchronised BatchNorm into OUT/sync/ (one launch for both);
``train`` and ``resume`` call ``train()`` like the command line does."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from resnet_cifar.core.distributed import process_group, world_from_environment
from resnet_cifar.training.config import TrainConfig
from resnet_cifar.training.interrupt import StopRequests
from resnet_cifar.training.trainer import Run, train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["ranks", "train", "resume"])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data-dir", type=Path, help="an ImageFolder tree (conftest.write_sample_folder)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sync-bn", action="store_true")
    parser.add_argument("--stop-after", type=int)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    if args.mode == "resume":
        train(resume=args.out, quiet=True)
        return
    def config(sync_bn: bool, out: Path) -> TrainConfig:
        return TrainConfig(model="resnet20", dataset="folder", data_dir=str(args.data_dir), image_size=16,
                           train_subset=128, batch_size=args.batch_size, epochs=2, lr=0.05, amp="off", device="cpu",
                           sync_bn=sync_bn, seed=3, out=str(out))

    if args.mode == "train":
        train(config(args.sync_bn, args.out), quiet=True, stop_after=args.stop_after, overwrite=True)
        return
    world = world_from_environment()
    with process_group(world, torch.device("cpu")), StopRequests() as stop:
        for variant in ["plain"] + (["sync"] if args.sync_bn else []):
            out = args.out / variant
            out.mkdir(exist_ok=True)
            run = Run(config(variant == "sync", out), out, stop, quiet=True, world=world)
            rows = [run.run_epoch() for _ in range(run.config.epochs)]
            torch.save({"weights": run.parts.model.state_dict(), "rows": rows}, out / f"rank{world.rank}.pt")


if __name__ == "__main__":
    main()
