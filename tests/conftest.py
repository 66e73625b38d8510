"""Shared fixtures: the full demo built once per run, a tiny pair for tests that only need a
valid one, the real service, and the CSAW material in ../shared.

Both builds lay out the same folders (``models/demo``, ``data/demo/*.h5``), so a test moves
between them by its fixture alone.

The long builds (the full demo, the attackers' small versions) start as processes of their
own once the tests are collected, and the modules that need them run last: the rest of the
suite runs while they build.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

import repair  # noqa: F401 - Keras 2 environment before TensorFlow loads
from tests.support.attacker_builds import ATTACKER_PROCESSES
from tests.support.builds import BackgroundBuild
from tests.support.service import ADMIN_TOKEN, CSAW_DIR, ROOT, copy_models, start_service

DEMO_FIXTURES = {"demo_root", "demo_manifest"}
ATTACKER_FIXTURES = {"attacked"}
ATTACKERS_NICENESS = 3
BUILDS: dict[str, BackgroundBuild] = {}
"""The background builds this session started, by name ("demo", "attackers-0", ...)."""
BUILD_ROOT = pytest.StashKey[Path]()


def _reused_demo() -> Path | None:
    reuse = os.environ.get("DEMO_ROOT")
    if reuse and (Path(reuse) / "models" / "demo" / "manifest.json").is_file():
        return Path(reuse)
    return None


def _module_needs(items: list[pytest.Item], fixtures: set[str]) -> set[str]:
    return {item.module.__name__ for item in items if fixtures & set(item.fixturenames)}


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects on the marker added here
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that need a long build (``-m "not long_build"`` leaves them out), and
    run modules that need none first, then those that need the attackers', then those that
    need the full demo (the longest chain of work); the order within a module is kept."""
    for item in items:
        if (DEMO_FIXTURES | ATTACKER_FIXTURES) & set(item.fixturenames):
            item.add_marker(pytest.mark.long_build)
    attackers = _module_needs(items, ATTACKER_FIXTURES)
    demo = _module_needs(items, DEMO_FIXTURES)
    items.sort(key=lambda item: (item.module.__name__ in demo, item.module.__name__ in attackers))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the builds the selected tests need."""
    needs = set().union(*(item.fixturenames for item in session.items))
    build_demo = bool(DEMO_FIXTURES & needs) and _reused_demo() is None
    build_attackers = bool(ATTACKER_FIXTURES & needs)
    if session.config.option.collectonly or not (build_demo or build_attackers):
        return
    root = Path(tempfile.mkdtemp(prefix="pytest-builds-"))
    session.config.stash[BUILD_ROOT] = root
    if build_demo:
        BUILDS["demo"] = BackgroundBuild(
            "demo",
            [str(ROOT / "scripts" / "build_models.sh")],
            root / "demo.log",
            MODELS_DIR=str(root / "demo" / "models"),
        )
    if build_attackers:
        for number, attacks in enumerate(ATTACKER_PROCESSES):
            BUILDS[f"attackers-{number}"] = BackgroundBuild(
                f"attackers {', '.join(attacks)}",
                [sys.executable, "-m", "tests.support.attacker_builds", str(root / "attackers")]
                + list(attacks),
                root / f"attackers-{number}.log",
                # Their tests run before the demo's, but the demo's build is the longest
                # chain of work: a smaller share for these lets it end with the rest.
                niceness=ATTACKERS_NICENESS,
            )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop what is still building; keep the builds (and their logs) when a test failed."""
    for build in BUILDS.values():
        build.stop()
    if BUILD_ROOT in session.config.stash:
        root = session.config.stash[BUILD_ROOT]
        if session.testsfailed:
            print(f"\nbackground builds and their logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


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
def demo_root(request: pytest.FixtureRequest) -> Path:
    """The default demo (data and model folder), built once in the background by the same
    script as the Docker build and README use. ``DEMO_ROOT`` reuses an existing build (for
    development)."""
    reused = _reused_demo()
    if reused is not None:
        return reused
    root = request.config.stash[BUILD_ROOT] / "demo"
    BUILDS["demo"].manifest(root / "models" / "demo")
    return root


@pytest.fixture(scope="session")
def attacker_builds(request: pytest.FixtureRequest) -> dict[str, tuple[BackgroundBuild, Path]]:
    """For each attacker, the process building its small version
    (tests/support/attacker_builds.py) and the folder it builds them in."""
    root = request.config.stash[BUILD_ROOT] / "attackers"
    return {
        attack: (BUILDS[f"attackers-{number}"], root)
        for number, attacks in enumerate(ATTACKER_PROCESSES)
        for attack in attacks
    }


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
    return copy_models(tiny_root, tmp_path_factory.mktemp("served"), csaw=True)


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


def pytest_terminal_summary(terminalreporter) -> None:  # pytest hook
    """Print how many fuzz cases each fuzzing test ran (docs/reliability.md quotes them)."""
    from tests.support.fuzzing import CASES_RUN

    if CASES_RUN:
        terminalreporter.section("fuzz cases run")
        for name, count in sorted(CASES_RUN.items()):
            terminalreporter.write_line(f"{count:7d}  {name}")
