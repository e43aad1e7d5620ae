"""Opening a sweep's Optuna study: its storage (a journal file, or a database URL) and its pruner."""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from ..errors import ResnetCifarError, first_line
from .journal import check_journal

PRUNERS = ("median", "halving", "none")
JOURNAL_FILE = "optuna.journal"
DATABASE_ATTEMPTS = 3


# A study's name is also its default folder (sweeps/NAME): one path component, nothing that climbs out of it.
STUDY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def check_study_name(name: str) -> str:
    """``name`` when it is one safe path component (letters, digits, ``-_.``, not starting with a dot)."""
    if not STUDY_NAME.fullmatch(name):
        raise ResnetCifarError(f"--study {name!r}: a study name is letters, digits and - _ . (at most 128, not "
                               f"starting with a dot or a dash), so that sweeps/NAME stays one folder")
    return name


def import_optuna() -> Any:
    """The optuna module, or a one-line error naming the extra that installs it."""
    try:
        import optuna
    except ImportError:
        raise ResnetCifarError("the sweep needs Optuna: pip install 'resnet-cifar[sweep]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep prints its own line per trial
    return optuna


def is_database_url(storage: str) -> bool:
    """A ``dialect[+driver]://...`` URL (PostgreSQL, MySQL, SQLite) rather than a journal file's path."""
    return re.match(r"^[a-z][a-z0-9+]*://", storage) is not None


def without_password(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def open_storage(storage: str) -> Any:
    """Optuna storage for ``storage``: a database URL (``postgresql://`` through psycopg 3, the sweep extra's driver),
    or else the path of a journal file (created with its folder); several processes, on one machine or many, may
    share either."""
    optuna = import_optuna()
    if is_database_url(storage):
        url = storage
        if url.startswith("postgresql://"):  # the sweep extra's driver, whatever SQLAlchemy's default is
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        for attempt in range(DATABASE_ATTEMPTS):
            try:
                return optuna.storages.RDBStorage(url)
            except Exception as error:  # noqa: BLE001 - SQLAlchemy and its drivers raise many kinds
                # Processes that start together race to create the schema in an empty database: a moment later
                # it is there. Any other error repeats and is reported.
                if attempt == DATABASE_ATTEMPTS - 1:
                    raise ResnetCifarError(f"cannot open the study database {without_password(storage)} "
                                           f"({first_line(error)})") from None
                time.sleep(0.5 * (attempt + 1))
    from optuna.storages.journal import JournalFileBackend

    path = Path(storage)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        check_journal(path)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except OSError as error:
        raise ResnetCifarError(f"cannot open the study journal {path} ({error})") from None
    except (ValueError, KeyError, TypeError, AssertionError) as error:  # whole records Optuna cannot replay
        raise ResnetCifarError(f"the study journal {path} cannot be replayed ({first_line(error)}): it is damaged; "
                               f"sweep into another --out, or restore the journal from a copy") from None


def make_pruner(name: str, startup_trials: int) -> Any:
    """Optuna's median pruner (after ``startup_trials`` finished trials, from a quarter of a trial's schedule on:
    steps are per mille of it, see ``runner.schedule_step``), successive halving, or none."""
    optuna = import_optuna()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=250)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ResnetCifarError(f"unknown pruner {name!r}: choose one of {', '.join(PRUNERS)}")


def open_study(name: str, storage: str, *, pruner: str = "median", startup_trials: int = 5,
               sampler_seed: int | None = None, create: bool = True) -> Any:
    """The study ``name`` in ``storage``, maximising accuracy; created unless ``create`` is false (a report)."""
    optuna = import_optuna()
    backend = open_storage(storage)
    sampler = optuna.samplers.TPESampler(seed=sampler_seed)
    if not create:
        try:
            return optuna.load_study(study_name=name, storage=backend, sampler=sampler)
        except KeyError:
            raise ResnetCifarError(f"no study {name!r} in {without_password(storage)}") from None
    study = optuna.create_study(study_name=name, storage=backend, direction="maximize", sampler=sampler,
                                pruner=make_pruner(pruner, startup_trials), load_if_exists=True)
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise ResnetCifarError(f"the study {name!r} in {without_password(storage)} minimises: it is not a sweep's")
    return study
