"""``experiment paper``: the paper's CIFAR-10 table 6 (ResNet-20 ... 110), our error next to the published one."""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Sequence

from ..errors import ResnetCifarError
from .figures import plot_error_curves
from .paper_schedule import PAPER_EPOCHS, paper_config
from .report import markdown_table, minutes, percent, settings_line, show, write_results
from .runner import Finished, run_all

# He et al. 2015, table 6: CIFAR-10 test error (%) of each depth (ResNet-110: best of 5 runs, mean 6.61).
PAPER_TEST_ERROR = {"resnet20": 8.75, "resnet32": 7.51, "resnet44": 7.17, "resnet56": 6.97, "resnet110": 6.43,
                    "resnet1202": 7.93}
# Published weights trained on the official files (akamaster's re-implementation of the paper, 91.7-93.4% there),
# scored on the JPEG-derived copy the project's benchmarks use (../shared/data/README.md): test error (%).
PUBLISHED_ERROR_ON_COPY = {"resnet20": 19.0, "resnet32": 17.4, "resnet44": 17.3, "resnet56": 16.8}
COPY_NOTE = ("On the JPEG-derived copy of CIFAR-10 every model scores lower than on the official files: published "
             "weights trained on the official files (akamaster's, 91.7-93.4% there) score 81.0-83.2% on it, so our "
             "errors compare side by side with that column, not with the paper's.")


def run_name(model: str, seed: int, first_seed: int) -> str:
    """``model`` for the first seed (the run ``experiment degradation`` shares), ``model-seedN`` for the others."""
    return model if seed == first_seed else f"{model}-seed{seed}"


def paper(depths: Sequence[int] = (20, 32, 44, 56, 110), *, epochs: int = PAPER_EPOCHS, runs: int = 1,
          out: str | Path = "experiments/paper", quiet: bool = False, jobs: int = 1,
          **settings: Any) -> list[Finished]:
    """Train ResNet-D for each depth with the paper's recipe, ``runs`` seeds each (from ``settings['seed']``, 0 by
    default); write ``paper.md``, ``paper.json`` and ``paper.png`` (the error curves) in ``out``.

    ``settings`` are ``TrainConfig`` fields shared by every run (dataset, data_dir, val_split, seed, ...);
    ``jobs`` trains that many runs at once (see ``run_all``).
    """
    names = [f"resnet{depth}" for depth in sorted(set(depths))]
    unknown = [name for name in names if name not in PAPER_TEST_ERROR]
    if unknown:
        raise ResnetCifarError(f"the paper's CIFAR table has no {', '.join(unknown)}: choose depths among "
                               f"20 32 44 56 110 1202")
    if runs < 1:
        raise ResnetCifarError(f"--runs must be at least 1, got {runs}")
    out = Path(out)
    first_seed = settings.pop("seed", 0)
    configs = {run_name(name, seed, first_seed): paper_config(name, epochs, seed=seed, **settings)
               for name in names for seed in range(first_seed, first_seed + runs)}
    finished = run_all(configs, out, quiet=quiet, jobs=jobs)
    by_model = {name: [run for run in finished if run.config.model == name] for name in names}
    table, data = _table(by_model)
    verdict = _verdict(by_model)
    plot_error_curves([group[0] for group in by_model.values()], "ResNets, the paper's recipe", out / "paper.png")
    settings_text = (f"{verdict}\n\n{COPY_NOTE}\n\n{settings_line(finished[0].config)} The paper's figures are for "
                     f"the official CIFAR-10 after 64k steps. Figure: paper.png (first seed).")
    write_results(out, "The paper's CIFAR-10 ResNets (He et al. 2015, table 6)", table,
                  {"runs": data, "verdict": verdict, "note": COPY_NOTE}, settings_text, stem="paper")
    show(f"\n{table}\n\n{verdict}\nresults: {out}", quiet)
    return finished


def _table(by_model: dict[str, list[Finished]]) -> tuple[str, list[dict[str, Any]]]:
    """One row per model: our mean test error over its seeds with their spread, beside the published figures."""
    rows, data = [], []
    for name, group in by_model.items():
        errors = [1 - run.final["test_acc"] for run in group]
        spread = f" ± {percent(statistics.stdev(errors))} (n={len(errors)})" if len(errors) > 1 else ""
        params = group[0].model_cost()[0]
        published = PUBLISHED_ERROR_ON_COPY.get(name)
        mean_minutes = statistics.mean(run.train_seconds for run in group) / 60
        rows.append([name, f"{params:,}", f"{PAPER_TEST_ERROR[name]:.2f}",
                     "not measured" if published is None else f"{published:.1f}",
                     percent(statistics.mean(errors)) + spread, f"{mean_minutes:.1f}"])
        data.append({"model": name, "parameters": params, "paper_test_error": PAPER_TEST_ERROR[name] / 100,
                     "published_weights_error_on_copy": None if published is None else published / 100,
                     "test_errors": errors, "seeds": [run.config.seed for run in group],
                     "epochs": group[0].config.epochs, "train_seconds": [run.train_seconds for run in group]})
    headers = ["model", "parameters", "paper error % (official data)", "published weights error % (this copy)",
               "our error % (this copy)", "training minutes"]
    return markdown_table(headers, rows), data


def _verdict(by_model: dict[str, list[Finished]]) -> str:
    """Whether each deeper ResNet ends below the shallowest one's mean test error, in words."""
    means = {name: statistics.mean(1 - run.final["test_acc"] for run in group) for name, group in by_model.items()}
    shallow, *deeper = means
    if not deeper:
        return "One depth only: nothing to compare."
    better = [name for name in deeper if means[name] < means[shallow]]
    worse = [name for name in deeper if name not in better]
    parts = [f"{', '.join(better)} beat{'s' if len(better) == 1 else ''} {shallow}" if better else "",
             f"{', '.join(worse)} do{'es' if len(worse) == 1 else ''} not beat {shallow}" if worse else ""]
    return "On test error, " + "; ".join(part for part in parts if part) + (
        " (as in the paper, deeper is better)." if not worse else " (the paper has every deeper net better).")
