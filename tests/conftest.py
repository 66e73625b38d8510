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
    """A full-size default demo (data and model folder), built once: about 1.5 minutes."""
    from repair.demo.build import build_demo

    root = tmp_path_factory.mktemp("demo")
    build_demo(root / "models" / "demo")
    return root


@pytest.fixture(scope="session")
def demo_manifest(demo_root: Path) -> dict:
    import json

    return json.loads((demo_root / "models" / "demo" / "manifest.json").read_text())
