"""The folders are the architecture: no import circles, and every import points down.

Reads the source (no imports run): every `import` and `from ... import` of hpo/ and
models/ counts, inside functions too (an import there is a dependency all the same); one
under `if TYPE_CHECKING:` does not (annotations only). docs/architecture.md draws the same
layers; `ALLOWED` is the one place the rule is written.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hpo", "models")

# Layer of a module: the longest prefix below that matches its dotted name.
LAYER_OF_PREFIX = {
    "hpo": "api",  # hpo/__init__.py: the version, and load_model lazily (the public API)
    "hpo.errors": "base",
    "models": "models",
    "models.vocabulary": "vocabulary",  # names only, no torch: what config validates against
    "hpo.config": "config",
    "hpo.storage": "storage",
    "hpo.study": "study",
    "hpo.training": "training",
    "hpo.runtime": "runtime",
    "hpo.report": "report",
    "hpo.compare": "features",
    "hpo.claims": "features",
    "hpo.service": "service",
    "hpo.cli": "cli",
    "hpo.__main__": "cli",
}
# Which layers each layer may import (besides itself): always downward.
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "vocabulary": set(),
    "models": {"vocabulary"},
    "config": {"base", "vocabulary"},
    "storage": {"base", "config"},
    "study": {"base", "config", "storage", "vocabulary"},
    "training": {"base", "config", "storage", "study", "models", "vocabulary"},
    "runtime": {"base", "config", "storage", "study", "training", "models", "vocabulary"},
    "report": {"base", "config", "storage", "study"},
}
ALLOWED["features"] = set(ALLOWED["runtime"]) | {"runtime", "report"}
ALLOWED["service"] = ALLOWED["features"] | {"features"}
ALLOWED["cli"] = ALLOWED["service"] | {"service"}
# The package's public names, re-exported lazily: nothing of hpo imports the package itself.
ALLOWED["api"] = {"base", "training"}


def module_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            files[name] = path
    return files


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    """ids of the nodes under `if TYPE_CHECKING:`."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """(imported hpo/models module, line) for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _type_checking_blocks(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from pkg import mod` imports the module pkg.mod; `from mod import name`, mod
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import hpo.storage.rdb.x` -> the module
                target = target.rpartition(".")[0]
            if target and target.split(".")[0] in PACKAGES:
                yield target, node.lineno


def import_graph() -> dict[str, dict[str, int]]:
    files = module_files()
    known = set(files)
    return {
        name: {target: line for target, line in imports_of(name, path, known) if target != name}
        for name, path in files.items()
    }


def layer_of(module: str) -> str:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        layer = LAYER_OF_PREFIX.get(".".join(parts[:end]))
        if layer is not None:
            return layer
    raise KeyError(module)


def circles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
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
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer() -> None:
    for module in import_graph():
        assert layer_of(module) in ALLOWED or layer_of(module) == "cli", module


def test_no_import_circles() -> None:
    assert circles(import_graph()) == []


def test_every_import_points_down_the_layers() -> None:
    wrong = [
        f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)}), line {line}"
        for module, targets in import_graph().items()
        for target, line in targets.items()
        if layer_of(target) != layer_of(module)
        and layer_of(target) not in ALLOWED[layer_of(module)]
    ]
    assert wrong == []


def test_the_checks_can_fail() -> None:
    """A circle and an upward import, planted in a graph, are found."""
    planted = {
        "hpo.storage.rdb": {"hpo.study.create": 1},
        "hpo.study.create": {"hpo.storage.rdb": 2},
    }
    assert circles(planted) == [["hpo.storage.rdb", "hpo.study.create"]]
    assert "study" not in ALLOWED[layer_of("hpo.storage.rdb")]


@pytest.mark.parametrize("layer", ["config", "storage", "study", "training", "runtime", "report"])
def test_each_layer_says_what_it_owns_and_may_import(layer: str) -> None:
    doc = ast.get_docstring(ast.parse((ROOT / "hpo" / layer / "__init__.py").read_text()))
    assert doc and "May import" in doc, f"hpo/{layer}/__init__.py needs its docstring"


def test_config_imports_neither_torch_nor_optuna() -> None:
    """Validating a study file is pure: the config layer loads in a fresh interpreter alone."""
    import subprocess
    import sys

    probe = (
        "import sys, pkgutil, importlib, hpo.config as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'hpo.config.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in ('torch', 'optuna', 'sqlalchemy') if n in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert run.stdout.strip() == "[]", run.stdout + run.stderr
