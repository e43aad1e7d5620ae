"""The package's layers: each imports only those below it, and heavy optional imports wait until they are used."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import resnet_cifar

PACKAGE = Path(resnet_cifar.__file__).parent

# Bottom first. A module may import its own layer's and lower layers' modules, never a higher layer's.
LAYERS = [
    {"errors", "log", "files"},
    {"models", "data"},
    {"plots"},
    {"engine"},
    {"flops", "bench", "config_options", "experiments", "serve"},
    {"cli", "__init__", "__main__"},
]


def _layer(unit: str) -> int:
    return next(index for index, units in enumerate(LAYERS) if unit in units)


def _unit(path: Path) -> str:
    """The layer unit of a source file: its sub-package, or its module name at the top."""
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imported_units(path: Path) -> set[str]:
    """Units of the package that ``path`` imports anywhere in it (inside functions too)."""
    depth = len(path.relative_to(PACKAGE).parts) - 1
    units = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = (node.module or "").split(".") if node.module else [a.name for a in node.names]
            if node.level == depth + 1:  # relative to the package root
                units.add(parts[0])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("resnet_cifar."):
            units.add(node.module.split(".")[1])
    return units


def test_every_module_imports_only_its_own_layer_and_the_ones_below() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = _unit(path)
        for imported in _imported_units(path) - {unit}:
            if _layer(imported) > _layer(unit):
                wrong.append(f"{path.relative_to(PACKAGE)} imports {imported}")
    assert not wrong


def test_the_layer_rule_catches_an_upward_import(tmp_path) -> None:
    assert _imported_units(PACKAGE / "plots.py") == {"files"}
    assert "plots" in _imported_units(PACKAGE / "engine" / "callbacks.py")
    assert _layer("engine") > _layer("plots")


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_predict_and_threads_load_no_heavy_or_unrelated_modules() -> None:
    loaded = _modules_after("import resnet_cifar.engine.predict, resnet_cifar.engine.threads")
    assert not loaded & {"matplotlib", "resnet_cifar.engine.evaluate", "resnet_cifar.engine.int8", "torch._inductor",
                         "resnet_cifar.engine.config", "tensorboard"}
    assert "matplotlib" in _modules_after("import resnet_cifar.engine.evaluate")  # the check can see it
