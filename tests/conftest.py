"""Shared fixtures: the demo built once per session, and the CSAW material in ../shared."""

import os
from pathlib import Path

import pytest

import repair  # noqa: F401 - Keras 2 environment before TensorFlow loads

ROOT = Path(__file__).resolve().parents[1]
CSAW_DIR = Path(os.environ.get("CSAW_DIR", ROOT.parent / "shared" / "csaw"))


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
    build and README use: about 2 minutes. ``DEMO_ROOT`` reuses an existing build."""
    import subprocess
    import sys

    reuse = os.environ.get("DEMO_ROOT")  # a folder with models/demo and data/demo, for dev
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


ADMIN_TOKEN = "test-admin-token-0123456789"


def copy_models(demo_root: Path, target: Path) -> Path:
    """A models folder for one service: a copy of the demo, plus a CSAW pair (sunglasses as
    B, multi-trigger as B') linked from ../shared when it is there."""
    import shutil

    models = target / "models"
    shutil.copytree(demo_root / "models", models, symlinks=True)
    if (CSAW_DIR / "models").is_dir():
        pair = models / "csaw_pair"
        pair.mkdir()
        (pair / "bad.h5").symlink_to(CSAW_DIR / "models" / "sunglasses_bd_weights.h5")
        (pair / "repaired.h5").symlink_to(
            CSAW_DIR / "models" / "multi_trigger_multi_target_bd_weights.h5"
        )
    return models


def start_service(
    models: Path, demo_root: Path, log: Path, options: dict | None = None, **env: str
):  # noqa: ANN202
    """The real service on ``models``, with the demo data as DATA_DIR; waits until ready.
    ``options`` go to :class:`tests.service.RunningService` (log level, wrapper)."""
    from tests.service import RunningService

    running = RunningService(
        {
            "MODELS_DIR": str(models),
            "DATA_DIR": str(demo_root / "data"),
            "DEFAULT_MODEL": "demo",
            "RELOAD_INTERVAL_S": "0.5",
            "MAX_UPLOAD_BYTES": str(4 * 1024 * 1024),
            **env,
        },
        log,
        **(options or {}),
    )
    running.models_dir = models
    running.wait_ready()
    return running


@pytest.fixture(scope="session")
def served_models(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The read-only service's models folder."""
    return copy_models(demo_root, tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="session")
def service(served_models: Path, demo_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """The real service on loopback, for predictions (no repair changes its models)."""
    running = start_service(
        served_models, demo_root, tmp_path_factory.mktemp("logs") / "service.log"
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def admin_service(demo_root: Path, tmp_path_factory: pytest.TempPathFactory):
    """A service of its own, with an admin token, whose models the admin tests repair."""
    root = tmp_path_factory.mktemp("admin")
    running = start_service(
        copy_models(demo_root, root), demo_root, root / "service.log", ADMIN_TOKEN=ADMIN_TOKEN
    )
    try:
        yield running
    finally:
        running.stop()


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest hook
    """Print how many fuzz cases each fuzzing test ran (docs/reliability.md quotes them)."""
    from tests.fuzzing import CASES_RUN

    if CASES_RUN:
        terminalreporter.section("fuzz cases run")
        for name, count in sorted(CASES_RUN.items()):
            terminalreporter.write_line(f"{count:7d}  {name}")
