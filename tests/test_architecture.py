"""Which part may import which (docs/architecture.md), read from the code itself, and what the
service process loads."""

import ast
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.service import ROOT

PACKAGES = ("app", "attacks", "bench", "modelstore", "repair")

ALLOWED: dict[str, tuple[str, ...]] = {
    "modelstore": ("modelstore",),
    "repair": ("repair", "modelstore"),
    "attacks": ("attacks", "repair", "modelstore"),
    "app.core": ("app.core",),
    "app.serving": ("app.serving", "app.core", "modelstore", "=repair", "=repair.keras_env"),
    "app.api": ("app.api", "app.serving", "app.core", "modelstore", "=repair"),
    "app.main": ("app.api", "app.serving", "app.core"),
    "app.__main__": ("app.core", "app.main"),
    "app": (),
    "bench": ("bench", "app", "attacks", "repair", "modelstore"),
}
"""Module prefix -> the project modules it may import (at the top or inside a function), as
the table of docs/architecture.md: a prefix allows its submodules too; ``=name`` allows that
module alone (``repair``'s public names, its Keras environment). The longest matching
prefix decides."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every project module ``path`` imports, wherever the import statement is."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {name for name in names if name.split(".")[0] in PACKAGES}
    return found


@functools.cache
def _graph() -> dict[str, set[str]]:
    modules = {
        _module_name(path): path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        # not the hidden, ignored folders a benchmark fills (bench/.peers: a peer's venv)
        if not any(part.startswith(".") for part in path.relative_to(ROOT).parts)
    }
    graph = {}
    for name, path in modules.items():
        # "from app.serving import heap" names the module app.serving.heap: keep real modules.
        graph[name] = {i for i in _imports(path) if i in modules and i != name}
    return graph


def _allowed(module: str, target: str) -> bool:
    owner = max(
        (prefix for prefix in ALLOWED if module == prefix or module.startswith(prefix + ".")),
        key=len,
    )
    for entry in ALLOWED[owner]:
        if entry.startswith("="):
            if target == entry[1:]:
                return True
        elif target == entry or target.startswith(entry + "."):
            return True
    return False


@pytest.mark.fast
def test_each_part_imports_only_what_the_architecture_allows() -> None:
    graph = _graph()
    unowned = [m for m in graph if not any(m == p or m.startswith(p + ".") for p in ALLOWED)]
    assert unowned == []
    broken = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target in targets
        if not _allowed(module, target)
    ]
    assert broken == []


@pytest.mark.fast
def test_there_are_no_import_cycles() -> None:
    graph = _graph()
    # A package's __init__ re-exporting its own modules is not a cycle between parts.
    edges = {
        module: {t for t in targets if not module.startswith(t + ".") and t != module}
        for module, targets in graph.items()
    }
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []


@pytest.mark.fast
def test_the_batcher_knows_nothing_of_tensorflow_or_http() -> None:
    code = (ROOT / "app" / "serving" / "batcher.py").read_text()
    for word in ("tensorflow", "fastapi", "starlette", "app.api", "repair"):
        assert word not in code


def test_the_service_process_loads_no_plotting_progress_or_training_library(
    tiny_root: Path,
) -> None:
    """Start the app (its lifespan loads the models) in a fresh interpreter and list what it
    imported: matplotlib, tqdm and tfmot belong to the repair, in its own worker process."""
    script = (
        "import json, sys\n"
        "from starlette.testclient import TestClient\n"
        "from app.core.config import load_settings\n"
        "from app.main import create_app\n"
        f"app = create_app(load_settings(models_dir={str(tiny_root / 'models')!r}))\n"
        "with TestClient(app) as client:\n"
        "    assert client.get('/ready').status_code == 200\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    for library in ("matplotlib", "tqdm", "tensorflow_model_optimization", "attacks"):
        assert library not in loaded
    assert "app.serving.pair" in loaded  # it did load the models
