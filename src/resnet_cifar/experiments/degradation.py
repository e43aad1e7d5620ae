"""``experiment degradation``: plain nets get worse with depth, residual nets get better (He et al. 2015, fig. 6)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..errors import ResnetCifarError
from ..models import list_models
from .figures import plot_degradation
from .paper_schedule import PAPER_EPOCHS, paper_config
from .report import markdown_table, minutes, percent, settings_line, show, write_results
from .runner import Finished, run_all


def degradation(depths: Sequence[int] = (20, 32, 44, 56), *, epochs: int = PAPER_EPOCHS,
                out: str | Path = "experiments/paper", quiet: bool = False, jobs: int = 1,
                **settings: Any) -> list[Finished]:
    """Train plain-D and ResNet-D for each depth D with the paper's recipe and the same seed; draw and tabulate.

    ``settings`` are ``TrainConfig`` fields shared by every run (dataset, data_dir, train_subset, seed, ...);
    ``jobs`` trains that many runs at once. Writes ``degradation.png``, ``degradation.md`` and ``degradation.json``
    in ``out``; returns the finished runs. The ResNet runs are those ``experiment paper`` trains into the same
    folder with the same settings (its first seed), so the two experiments share them.
    """
    depths = sorted(set(depths))
    names = [f"{kind}{depth}" for kind in ("plain", "resnet") for depth in depths]
    missing = [name for name in names if name not in list_models()]
    if missing:
        raise ResnetCifarError(f"no model {', '.join(missing)}: the paper's CIFAR depths are 20, 32, 44, 56 and 110")
    out = Path(out)
    runs = run_all({name: paper_config(name, epochs, **settings) for name in names}, out, quiet=quiet,
                   jobs=jobs)
    plain, residual = runs[:len(depths)], runs[len(depths):]
    plot_degradation(plain, residual, out / "degradation.png")
    table, data = _results(runs)
    verdict = _verdict(plain, residual)
    write_results(out, "Degradation: plain against residual networks", table, {"runs": data, "verdict": verdict},
                  f"{verdict}\n\n{settings_line(runs[0].config)} Training error is measured on the augmented "
                  f"training batches during each epoch, test error after it. Figure: degradation.png.",
                  stem="degradation")
    show(f"\n{table}\n\n{verdict}\nfigure and tables: {out}", quiet)
    return runs


def _results(runs: Sequence[Finished]) -> tuple[str, list[dict[str, Any]]]:
    rows, data = [], []
    for run in runs:
        params = run.model_cost()[0]
        train_error, test_error = 1 - run.final["train_acc"], 1 - run.final["test_acc"]
        rows.append([run.name, f"{params:,}", percent(train_error), percent(test_error), minutes(run.train_seconds)])
        data.append({"model": run.name, "parameters": params, "train_error": train_error, "test_error": test_error,
                     "train_seconds": run.train_seconds, "epochs": run.config.epochs})
    headers = ["model", "parameters", "training error %", "test error %", "training minutes"]
    return markdown_table(headers, rows), data


def _verdict(plain: Sequence[Finished], residual: Sequence[Finished]) -> str:
    """Whether the deepest plain net ends with a higher training error than the shallowest, and the reverse for
    residual nets (the paper's claim), in words."""
    if len(plain) < 2:
        return "One depth only: nothing to compare."
    sentences = []
    for runs, expected in ((plain, "higher"), (residual, "lower")):
        shallow, deep = runs[0], runs[-1]
        shallow_error, deep_error = 1 - shallow.final["train_acc"], 1 - deep.final["train_acc"]
        found = "higher" if deep_error > shallow_error else "lower" if deep_error < shallow_error else "equal"
        agrees = "as the paper reports" if found == expected else f"the paper reports {expected}"
        sentences.append(f"{deep.name} ends with a {found} training error than {shallow.name} "
                         f"({percent(deep_error)}% against {percent(shallow_error)}%): {agrees}.")
    return " ".join(sentences)

