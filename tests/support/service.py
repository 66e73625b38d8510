"""Start the real service (uvicorn on loopback, in a subprocess) or build it in process."""

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from bench.process import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
CSAW_DIR = Path(os.environ.get("CSAW_DIR", ROOT.parent / "shared" / "csaw"))
ADMIN_TOKEN = "test-admin-token-0123456789"
ONNX_ONLY = {"RUNTIME": "onnx"}
"""For services in tests about files, processes, signals or access rather than inference:
pairs loaded in ONNX Runtime alone. Without TensorFlow to import, a start takes about 0.9 s
of CPU instead of 4.7 (tests/app/serving/test_runtimes.py is where the runtimes are tested)."""
HTTP = httpx.Client(timeout=60)
"""One client for the helpers that call a service many times: a new client per request
costs ~30 ms of CPU (its TLS context), more than the request."""


class RunningService(ServerProcess):
    """The product service, ``app.main:create_app``, with ``env`` (MODELS_DIR, ...)."""

    def __init__(self, env: dict[str, str], log_path: Path, **options: object) -> None:
        super().__init__(env, log_path, **options)  # type: ignore[arg-type]


def copy_models(root: Path, target: Path, csaw: bool = False) -> Path:
    """A models folder for one service: a copy of ``root``'s, plus (with ``csaw``) a CSAW pair
    (sunglasses as B, multi-trigger as B') linked from ../shared when it is there."""
    models = target / "models"
    shutil.copytree(root / "models", models, symlinks=True)
    if csaw and (CSAW_DIR / "models").is_dir():
        pair = models / "csaw_pair"
        pair.mkdir()
        (pair / "bad.h5").symlink_to(CSAW_DIR / "models" / "sunglasses_bd_weights.h5")
        (pair / "repaired.h5").symlink_to(
            CSAW_DIR / "models" / "multi_trigger_multi_target_bd_weights.h5"
        )
    return models


def start_service(
    models: Path, root: Path, log: Path, options: dict | None = None, **env: str
) -> RunningService:
    """The real service on ``models``, with ``root``'s data as DATA_DIR; waits until ready.
    ``options`` go to :class:`RunningService` (log level, wrapper)."""
    running = RunningService(
        {
            "MODELS_DIR": str(models),
            "DATA_DIR": str(root / "data"),
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


@contextlib.asynccontextmanager
async def in_process(**settings: object) -> AsyncIterator[httpx.AsyncClient]:
    """The service app in this process (its lifespan run), with a client that calls it
    through ASGI: the HTTP contract without a server process."""
    from app.core.config import load_settings
    from app.main import create_app

    app = create_app(load_settings(**settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client
