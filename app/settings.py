"""Configuration from environment variables (listed with defaults in README)."""

import os
from dataclasses import dataclass, field
from pathlib import Path


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def telemetry_config(enabled: bool) -> dict[str, bool]:
    """FastAPI's own OpenTelemetry instrumentation: off unless asked for. When off, it costs
    nothing per request (when on but unconfigured, it looks up the providers and the
    environment on every request: about a tenth of the event loop at full load here)."""
    return {"tracing": enabled, "metrics": enabled, "logs": enabled}


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the whole machine)."""
    return len(os.sched_getaffinity(0))


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class Settings:
    """Every knob of the service; ``Settings.from_env()`` reads them."""

    models_dir: Path = Path("models")
    default_model: str | None = None
    data_dir: Path = Path("data")
    admin_token: str | None = None
    api_keys: tuple[str, ...] = ()
    rate_limit: str | None = None
    max_upload_bytes: int = 8 * 1024 * 1024
    max_header_bytes: int = 16384
    max_image_pixels: int = 4096 * 4096
    max_files: int = 256
    reload_interval_s: float = 2.0
    max_batch: int = 256
    max_batch_wait_ms: float = 2.0
    workers: int = 1
    infer_threads: int = 1
    batch_threads: int = field(default_factory=available_cores)
    share_from: int = 64
    runtime: str = "auto"
    onnx_max_batch: int = 4
    host: str = "127.0.0.1"
    port: int = 8000
    http_parser: str = "auto"
    log_level: str = "info"
    opentelemetry: bool = False

    @classmethod
    def from_env(cls) -> "Settings":
        """Read the environment: MODELS_DIR, DEFAULT_MODEL, DATA_DIR, ADMIN_TOKEN, ..."""
        return cls(
            models_dir=Path(os.environ.get("MODELS_DIR", "models")),
            default_model=os.environ.get("DEFAULT_MODEL") or None,
            data_dir=Path(os.environ.get("DATA_DIR", "data")),
            admin_token=os.environ.get("ADMIN_TOKEN") or None,
            api_keys=tuple(
                k.strip() for k in os.environ.get("API_KEYS", "").split(",") if k.strip()
            ),
            rate_limit=os.environ.get("RATE_LIMIT") or None,
            max_upload_bytes=_int("MAX_UPLOAD_BYTES", 8 * 1024 * 1024),
            max_header_bytes=_int("MAX_HEADER_BYTES", 16384),
            max_image_pixels=_int("MAX_IMAGE_PIXELS", 4096 * 4096),
            max_files=_int("MAX_FILES", 256),
            reload_interval_s=_float("RELOAD_INTERVAL_S", 2.0),
            max_batch=_int("MAX_BATCH", 256),
            max_batch_wait_ms=_float("MAX_BATCH_WAIT_MS", 2.0),
            workers=_int("WORKERS", 1),
            infer_threads=_int("INFER_THREADS", 1),
            batch_threads=_int("BATCH_THREADS", available_cores()),
            share_from=_int("SHARE_FROM", 64),
            runtime=os.environ.get("RUNTIME", "auto"),
            onnx_max_batch=_int("ONNX_MAX_BATCH", 4),
            host=os.environ.get("HOST", "127.0.0.1"),
            port=_int("PORT", 8000),
            http_parser=os.environ.get("HTTP_PARSER", "auto"),
            log_level=os.environ.get("LOG_LEVEL", "info"),
            opentelemetry=os.environ.get("OPENTELEMETRY", "0").lower() in ("1", "true", "yes"),
        )
