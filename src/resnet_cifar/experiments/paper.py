"""``experiment paper``: the paper's CIFAR-10 table 6 (ResNet-20 ... 110), our error next to the published one."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..errors import ResnetCifarError
from .paper_schedule import PAPER_EPOCHS, paper_config
from .report import markdown_table, minutes, percent, settings_line, show, write_results
from .runner import Finished, run_all

# He et al. 2015, table 6: CIFAR-10 test error (%) of each depth (ResNet-110: best of 5 runs, mean 6.61).
PAPER_TEST_ERROR = {"resnet20": 8.75, "resnet32": 7.51, "resnet44": 7.17, "resnet56": 6.97, "resnet110": 6.43,
                    "resnet1202": 7.93}


def paper(depths: Sequence[int] = (20, 32, 44, 56, 110), *, epochs: int = PAPER_EPOCHS,
          out: str | Path = "experiments/paper", quiet: bool = False, **settings: Any) -> list[Finished]:
    """Train ResNet-D for each depth with the paper's recipe; write ``results.md``/``results.json`` in ``out``.

    ``settings`` are ``TrainConfig`` fields shared by every run (dataset, data_dir, val_split, seed, ...).
    """
    names = [f"resnet{depth}" for depth in sorted(set(depths))]
    unknown = [name for name in names if name not in PAPER_TEST_ERROR]
    if unknown:
        raise ResnetCifarError(f"the paper's CIFAR table has no {', '.join(unknown)}: choose depths among "
                               f"20 32 44 56 110 1202")
    out = Path(out)
    runs = run_all({name: paper_config(name, epochs, **settings) for name in names}, out, quiet=quiet)
    rows, data = [], []
    for run in runs:
        params = run.model_cost()[0]
        error = 1 - run.final["test_acc"]
        rows.append([run.name, f"{params:,}", f"{PAPER_TEST_ERROR[run.name]:.2f}", percent(error),
                     minutes(run.train_seconds)])
        data.append({"model": run.name, "parameters": params, "paper_test_error": PAPER_TEST_ERROR[run.name] / 100,
                     "test_error": error, "train_seconds": run.train_seconds, "epochs": run.config.epochs})
    table = markdown_table(["model", "parameters", "paper error %", "our error %", "training minutes"], rows)
    settings_text = (f"{settings_line(runs[0].config)} The paper's figures are for the official CIFAR-10 after "
                     f"64k steps; a different copy of the data or fewer epochs is compared side by side only.")
    write_results(out, "The paper's CIFAR-10 ResNets (He et al. 2015, table 6)", table, {"runs": data}, settings_text)
    show(f"\n{table}\n\nresults: {out}", quiet)
    return runs
