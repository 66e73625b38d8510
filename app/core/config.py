"""The service's settings: one typed field per environment variable (``MODELS_DIR`` for
``models_dir``), validated when the service starts."""

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the whole machine)."""
    return len(os.sched_getaffinity(0))


class ConfigError(Exception):
    """A setting has a value the service cannot use; the message names the variable."""


class Settings(BaseSettings):
    """Every knob of the service, read from the environment (see README, "Configuration")."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    models_dir: Path = Field(Path("models"), description="folder of model folders")
    default_model: str | None = Field(None, description="model used when a request names none")
    data_dir: Path = Field(
        Path("data"), description="the only folder POST /repair may read data from"
    )
    admin_token: str | None = Field(
        None, description="bearer token of the admin endpoints (unset: they answer 403)"
    )
    repair_url: str | None = Field(
        None,
        description="a replica that can repair (the repair image), to which this one sends "
        "POST /repair and GET /repair/{id}; unset: repair in a worker process here",
    )
    api_keys: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="comma-separated keys; /predict and /v2 inference then need one"
    )
    rate_limit: str | None = Field(
        None, description="per-client limit of inference requests, e.g. 100/second"
    )
    filter_rule: Literal["manifest", "calibrated", "strict"] = Field(
        "manifest",
        description="when to answer N: the rule each model's manifest recommends, the "
        "calibrated overlap threshold, or strict top-label disagreement",
    )
    evidence_dir: Path | None = Field(
        None,
        description="folder of the evidence store (flagged inputs, for review); unset: "
        "evidence/ beside MODELS_DIR",
    )
    evidence_keep_images: bool = Field(
        False, description="keep flagged images themselves, not only their SHA-256 (personal data)"
    )
    evidence_max_records: int = Field(
        100_000, gt=0, description="evidence records kept; the oldest go first"
    )
    evidence_max_bytes: int = Field(
        512 * 2**20, gt=0, description="bytes of evidence kept (images and records)"
    )
    max_upload_bytes: int = Field(8 * 1024 * 1024, gt=0, description="request body limit")
    max_header_bytes: int = Field(16384, gt=0, description="request head limit")
    max_image_pixels: int = Field(4096 * 4096, gt=0, description="pixels per image")
    max_files: int = Field(256, gt=0, description="images per request")
    reload_interval_s: float = Field(
        2.0, gt=0, description="how often the models folder is checked for new versions"
    )
    max_batch: int = Field(256, gt=0, description="most images per run of the models")
    max_batch_wait_ms: float = Field(
        2.0, ge=0, description="how long a batch may wait for requests still being decoded"
    )
    batch_threads: int = Field(
        default_factory=available_cores, gt=0, description="inference threads of the batcher"
    )
    share_from: int = Field(
        64, gt=0, description="queued images from which two inference threads share them"
    )
    infer_threads: int = Field(1, gt=0, description="threads one model call uses")
    runtime: Literal["auto", "tf", "onnx"] = Field(
        "auto",
        description="auto: ONNX Runtime for small batches and TensorFlow's frozen graph "
        "for large ones; tf; onnx",
    )
    onnx_max_batch: int = Field(4, ge=0, description="largest batch auto sends to ONNX Runtime")
    workers: int = Field(1, gt=0, description="uvicorn worker processes (python -m app)")
    host: str = Field("127.0.0.1", description="address to listen on (python -m app)")
    port: int = Field(8000, gt=0, lt=65536, description="port to listen on (python -m app)")
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="addresses whose X-Forwarded-For names the client (python -m app); * "
        "behind the compose entry point, where only the proxy reaches a replica",
    )
    http_parser: Literal["auto", "h11", "httptools"] = Field(
        "auto", description="uvicorn's HTTP parser (python -m app)"
    )
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = Field(
        "info", description="log level; debug also shows TensorFlow's own log lines"
    )
    opentelemetry: bool = Field(
        False, description="FastAPI's OpenTelemetry spans and metrics (cost: a tenth of the loop)"
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(key.strip() for key in value.split(",") if key.strip())
        return value

    @field_validator(
        "default_model", "admin_token", "rate_limit", "repair_url", "evidence_dir", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("rate_limit")
    @classmethod
    def _parse_rate(cls, value: str | None) -> str | None:
        if value is not None:
            from limits import parse

            try:
                parse(value)
            except ValueError as exc:
                raise ValueError(f"not a rate such as 100/second ({exc})") from exc
        return value


def evidence_folder(settings: Settings) -> Path:
    """Where the evidence store lives: ``EVIDENCE_DIR``, or ``evidence/`` beside the models."""
    return settings.evidence_dir or settings.models_dir.resolve().parent / "evidence"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (and ``overrides``); :class:`ConfigError` names the
    variable of every invalid value."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{str(error['loc'][0]).upper()}={error.get('input')!r}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc


def telemetry_config(enabled: bool) -> dict[str, bool]:
    """FastAPI's own OpenTelemetry instrumentation: off unless asked for. When off, it costs
    nothing per request (when on but unconfigured, it looks up the providers and the
    environment on every request: about a tenth of the event loop at full load)."""
    return {"tracing": enabled, "metrics": enabled, "logs": enabled}
