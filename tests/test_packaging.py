"""The package's metadata: what `pip install 'resnet-cifar[all]'` brings."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_all_extra_names_every_other_user_extra() -> None:
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    (everything,) = extras["all"]
    named = set(re.fullmatch(r"resnet-cifar\[(.*)\]", everything).group(1).split(","))
    assert named == set(extras) - {"all", "dev", "docs"}  # the test and documentation tools, not features
