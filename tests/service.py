"""Start the real service (uvicorn on loopback) in a subprocess for tests."""

from pathlib import Path

from bench.process import ServerProcess


class RunningService(ServerProcess):
    """The product service, ``app.main:app``, with ``env`` (MODELS_DIR, ...)."""

    def __init__(self, env: dict[str, str], log_path: Path, **options: object) -> None:
        super().__init__(env, log_path, **options)  # type: ignore[arg-type]
