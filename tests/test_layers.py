"""The package's structure: layers that import only downwards, no import cycle between modules, training and
inference apart over a shared core, no package holding most of the code, heavy imports waiting until used."""
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
    {"core"},
    {"training", "inference"},
    {"flops", "bench", "model_card", "config_options", "experiments", "serve", "sweep"},
    {"cli", "__init__", "__main__"},
]
# Units of one layer that must not import each other: the two rooms over the shared core.
APART = {frozenset({"training", "inference"})}


def _layer(unit: str) -> int:
    return next(index for index, units in enumerate(LAYERS) if unit in units)


def _unit(module: str) -> str:
    """The layer unit of a module (dotted, below the package): its sub-package, or its name at the top."""
    return module.split(".")[0]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _import_nodes(tree: ast.AST) -> list[ast.ImportFrom | ast.Import]:
    """Every import in the file, inside functions too, except those under ``if TYPE_CHECKING:``."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if _is_type_checking_block(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _existing_module(dotted: str) -> str | None:
    """``dotted`` (below the package) as a module that exists: a file, or a sub-package's ``__init__``."""
    if not dotted:
        return "__init__"
    base = PACKAGE.joinpath(*dotted.split("."))
    if base.with_suffix(".py").is_file():
        return dotted
    if (base / "__init__.py").is_file():
        return f"{dotted}.__init__"
    return None


def imported_modules(path: Path) -> set[str]:
    """Modules of the package that the file at ``path`` imports (``core.source``, ``models.__init__``...)."""
    module = _module_name(path)
    package = module.split(".")[:-1]
    found = set()
    for node in _import_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name[len("resnet_cifar."):] for alias in node.names
                       if alias.name.startswith("resnet_cifar.")]
        elif node.level:
            anchor = package[:len(package) - (node.level - 1)] if node.level > 1 else package
            base = ".".join([*anchor, *(node.module.split(".") if node.module else [])])
            targets = [f"{base}.{alias.name}".strip(".") for alias in node.names] + [base]
        elif (node.module or "").startswith("resnet_cifar"):
            base = node.module[len("resnet_cifar"):].strip(".")
            targets = [f"{base}.{alias.name}".strip(".") for alias in node.names] + [base]
        else:
            continue
        # ``from .x import name``: the module x, or x.name when that is a module itself
        modules = {_existing_module(target) for target in targets} - {None}
        submodules = {m for m in modules if not m.endswith("__init__")}
        found |= submodules or modules
    return found - {module}


def _graph() -> dict[str, set[str]]:
    return {_module_name(path): imported_modules(path) for path in sorted(PACKAGE.rglob("*.py"))}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: each strongly connected set of two or more modules (Tarjan's algorithm)."""
    index, low, on_stack, stack, cycles, counter = {}, {}, set(), [], [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_every_module_imports_only_its_own_layer_and_the_ones_below() -> None:
    wrong = []
    for module, imported in _graph().items():
        unit = _unit(module)
        for target in {_unit(m) for m in imported} - {unit}:
            if _layer(target) > _layer(unit) or frozenset({unit, target}) in APART:
                wrong.append(f"{module} imports {target}")
    assert not wrong


def test_no_import_cycle_between_modules() -> None:
    assert find_cycles(_graph()) == []


def test_the_rules_catch_an_upward_import_and_a_cycle(tmp_path) -> None:
    assert imported_modules(PACKAGE / "plots.py") == {"files"}
    assert "plots" in imported_modules(PACKAGE / "training" / "callbacks.py")
    assert "core.source" in imported_modules(PACKAGE / "inference" / "loading.py")
    # an import inside a function counts, one for type checking only does not
    assert "inference.exported" in imported_modules(PACKAGE / "inference" / "loading.py")
    assert "training.trainer" not in imported_modules(PACKAGE / "training" / "policies.py")
    assert _layer("training") > _layer("plots")
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_package_holds_more_than_about_a_third_of_the_code() -> None:
    lines: dict[str, int] = {}
    for path in PACKAGE.rglob("*.py"):
        unit = _unit(_module_name(path))
        lines[unit] = lines.get(unit, 0) + len(path.read_text().splitlines())
    total = sum(lines.values())
    largest = max(lines, key=lines.get)
    assert lines[largest] / total < 0.34, f"{largest} holds {lines[largest]} of {total} lines"


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_predict_and_threads_load_no_heavy_or_unrelated_modules() -> None:
    loaded = _modules_after("import resnet_cifar.inference.predict, resnet_cifar.core.threads")
    assert not loaded & {"matplotlib", "resnet_cifar.inference.evaluate", "resnet_cifar.inference.int8",
                         "torch._inductor", "resnet_cifar.training.config", "tensorboard"}
    assert not any(name.startswith("resnet_cifar.training") for name in loaded)
    assert "matplotlib" in _modules_after("import resnet_cifar.inference.evaluate")  # the check can see it
