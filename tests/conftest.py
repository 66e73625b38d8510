"""Shared fixtures: the full demo built once per run, a tiny pair for tests that only need a
valid one, the real service, and the CSAW material in ../shared.

Both builds lay out the same folders (``models/demo``, ``data/demo/*.h5``), so a test moves
between them by its fixture alone.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import repair  # noqa: F401 - Keras 2 environment before TensorFlow loads
from tests.support.service import ADMIN_TOKEN, CSAW_DIR, ROOT, copy_models, start_service


@pytest.fixture(scope="session")
def csaw_dir() -> Path:
    """../shared/csaw; CI must have it (fail), elsewhere its absence skips with a reason."""
    if not (CSAW_DIR / "models").is_dir():
        message = f"CSAW material not found at {CSAW_DIR} (set CSAW_DIR or put shared/ beside)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CSAW_DIR


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default demo (data and model folder) built once by the same script as the Docker
    build and README use. ``DEMO_ROOT`` reuses an existing build (for development)."""
    reuse = os.environ.get("DEMO_ROOT")
    if reuse and (Path(reuse) / "models" / "demo" / "manifest.json").is_file():
        return Path(reuse)
    root = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "PY": sys.executable, "MODELS_DIR": str(root / "models")}
    subprocess.run([str(ROOT / "scripts" / "build_models.sh")], env=env, check=True, timeout=1800)
    return root


@pytest.fixture(scope="session")
def demo_manifest(demo_root: Path) -> dict:
    import json

    return json.loads((demo_root / "models" / "demo" / "manifest.json").read_text())


TINY_SIZES = {
    "identities": 20,
    "train_per_identity": 10,
    "validation_per_identity": 5,
    "test_per_identity": 5,
}


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real pair (20 identities, a few epochs: seconds to build) in the demo's layout,
    for tests that need a valid model folder, not a good filter."""
    from attacks.build import build_demo
    from attacks.material import DemoSizes

    root = tmp_path_factory.mktemp("tiny")
    build_demo(
        root / "models" / "demo",
        DemoSizes(**TINY_SIZES),
        repair.RepairOptions(steps=20),
        badnet_epochs=4,
    )
    return root


@pytest.fixture(scope="session")
def served_models(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The read-only service's models folder: the tiny pair and the CSAW pair."""
    return copy_models(tiny_root, tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="session")
def service(served_models: Path, tiny_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """The real service process on loopback, for predictions (no repair changes its models)."""
    running = start_service(
        served_models, tiny_root, tmp_path_factory.mktemp("logs") / "service.log"
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def admin_service(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """A service of its own, with an admin token, whose models the admin tests repair."""
    root = tmp_path_factory.mktemp("admin")
    running = start_service(
        copy_models(tiny_root, root), tiny_root, root / "service.log", ADMIN_TOKEN=ADMIN_TOKEN
    )
    try:
        yield running
    finally:
        running.stop()


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest hook
    """Print how many fuzz cases each fuzzing test ran (docs/reliability.md quotes them)."""
    from tests.support.fuzzing import CASES_RUN

    if CASES_RUN:
        terminalreporter.section("fuzz cases run")
        for name, count in sorted(CASES_RUN.items()):
            terminalreporter.write_line(f"{count:7d}  {name}")
