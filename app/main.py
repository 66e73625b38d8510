"""FastAPI application: /predict, /models, /health, /ready, /metrics, admin /repair."""

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
from fastapi import Depends, FastAPI, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import heap
from app.access import AccessControl
from app.batcher import MicroBatcher
from app.errors import ServiceError
from app.limits import BodyTooLarge, RequestSizeLimit
from app.metrics import BATCH_IMAGES, FLAGGED, IMAGES, MODELS_SERVED, REGISTRY
from app.pairs import Classified, configure_tensorflow_threads
from app.registry import Registry
from app.repair_jobs import JobConflict, RepairJobs, discard_partials
from app.request_metrics import RequestMetrics
from app.schemas import PREDICT_OPENAPI, PredictResponse, RepairRequest
from app.settings import Settings, telemetry_config
from app.uploads import decode_uploads, read_uploads

log = logging.getLogger("app")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service for ``settings`` (default: from the environment)."""
    settings = settings or Settings.from_env()
    configure_tensorflow_threads(settings.infer_threads)
    registry = Registry(
        settings.models_dir,
        settings.default_model,
        runtime=settings.runtime,
        onnx_max_batch=settings.onnx_max_batch,
        threads=settings.infer_threads,
    )
    jobs = RepairJobs(on_success=lambda model: registry.refresh())
    access = AccessControl(settings.api_keys, settings.rate_limit)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(discard_partials, settings.models_dir)
        await run_in_threadpool(registry.refresh)
        MODELS_SERVED.set(len(registry.pairs()))
        heap.settle()  # after the models, before the first request
        watcher = asyncio.create_task(_watch_models(registry, settings.reload_interval_s))
        yield
        watcher.cancel()

    app = FastAPI(
        title="BadNet filter",
        description="Face recognition that answers N (the N+1-th class) when the received "
        "model B and its fine-pruned repair B' disagree: a backdoor trigger.",
        version="0.1.0",
        lifespan=lifespan,
        telemetry=telemetry_config(settings.opentelemetry),
    )
    app.state.settings, app.state.registry, app.state.jobs = settings, registry, jobs
    _install_error_handlers(app)

    @app.get("/health", summary="The process is up")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready", summary="200 when at least one model pair serves, else 503")
    async def ready() -> JSONResponse:
        served = sorted(registry.pairs())
        status = 200 if served else 503
        return JSONResponse({"ready": bool(served), "models": served}, status_code=status)

    @app.get("/models", summary="Served model pairs with their metrics")
    async def models() -> dict:
        return {
            "default": registry.default_model,
            "models": [pair.describe() for pair in registry.pairs().values()],
            "refused": registry.refused,
        }

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        MODELS_SERVED.set(len(registry.pairs()))
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/predict",
        response_model=PredictResponse,
        summary="Classify one or more face images",
        description="multipart/form-data with one or more `file` fields, or a raw body with "
        "an `image/*` content type. `label` is B's label, or N when B and B' disagree. "
        "With `API_KEYS` set, send a key as `X-API-Key`.",
        openapi_extra=PREDICT_OPENAPI,
    )
    async def predict(request: Request) -> JSONResponse:
        model = request.query_params.get("model")
        if access.enabled:
            access.check(request)
        pair = registry.get(model)
        if pair is None:
            if model is None and registry.pairs():
                raise ServiceError(
                    400,
                    f"several models are served; name one with ?model= "
                    f"({', '.join(sorted(registry.pairs()))})",
                )
            raise ServiceError(404, f"unknown model {model!r}" if model else "no model served")
        batcher = _batcher_for(pair, settings)
        batcher.expect()  # the batcher may wait a moment for this request's images
        try:
            uploads = await read_uploads(request, settings)
            decoded = await decode_uploads(uploads, pair.input_shape[:2], settings)
        finally:
            batcher.cancel_expectation()
        result = await batcher.submit(decoded.rgb)  # uint8: scaled in the inference thread
        labels, bad_labels = result.label.tolist(), result.bad_label.tolist()
        repaired_labels, confidences = result.repaired_label.tolist(), result.confidence.tolist()
        poisoned = pair.poisoned_label
        return JSONResponse(
            {
                "model": pair.name,
                "version": pair.version,
                "predictions": [
                    {
                        "filename": name,
                        "label": labels[i],
                        "poisoned": labels[i] == poisoned,
                        "bad_label": bad_labels[i],
                        "repaired_label": repaired_labels[i],
                        "confidence": confidences[i],
                        "resized": decoded.resized[i],
                    }
                    for i, (name, _) in enumerate(uploads)
                ],
            }
        )

    async def admin_only(authorization: str | None = Header(None)) -> None:
        _require_admin(settings, authorization)

    # Access is checked before the body is even parsed: strangers learn nothing from 422s.
    @app.post(
        "/repair",
        status_code=202,
        summary="Admin: regenerate B' in the background",
        dependencies=[Depends(admin_only), Depends(_json_only)],
    )
    async def start_repair(body: RepairRequest) -> dict:
        pair = registry.get(body.model)
        if pair is None:
            raise ServiceError(404, f"unknown model {body.model!r}")
        spec = {
            "model": pair.name,
            "bad_model": str(pair.folder / "bad.h5"),
            "clean_data": str(_data_path(settings, body.clean_data)),
            "poisoned_data": [str(_data_path(settings, p)) for p in body.poisoned_data],
            "target": body.target,
            "clean_test": str(_data_path(settings, body.clean_test)) if body.clean_test else None,
            "out": str(settings.models_dir / pair.name),
            "options": body.options.model_dump(exclude_none=True),
        }
        try:
            job = jobs.start(pair.name, spec)
        except JobConflict as exc:
            raise ServiceError(409, str(exc)) from exc
        return {"job_id": job.id, "status": job.status, "status_url": f"/repair/{job.id}"}

    @app.get(
        "/repair/{job_id}",
        summary="Admin: status of a repair job",
        dependencies=[Depends(admin_only)],
    )
    async def repair_status(job_id: str) -> dict:
        job = jobs.get(job_id)
        if job is None:
            raise ServiceError(404, f"unknown repair job {job_id!r}")
        return job.describe()

    limited = RequestSizeLimit(
        RequestMetrics(app), settings.max_upload_bytes, settings.max_header_bytes
    )
    return limited  # type: ignore[return-value]


def _batcher_for(pair, settings: Settings) -> MicroBatcher:  # noqa: ANN001
    """The pair's batcher, made on first use (it needs the running event loop)."""
    if pair.batcher is None:
        pair.batcher = MicroBatcher(
            pair.classify,
            settings.max_batch,
            settings.max_batch_wait_ms / 1000.0,
            on_batch=_batch_counter(pair.name, pair.poisoned_label),
            threads=settings.batch_threads,
            share_from=settings.share_from,
        )
    return pair.batcher


def _batch_counter(model: str, poisoned_label: int) -> Callable[[Classified], None]:
    """Counts each batch's images and flagged images (run in the inference thread)."""
    batch_images, images, flagged = (
        BATCH_IMAGES.labels(model),
        IMAGES.labels(model),
        FLAGGED.labels(model),
    )

    def count(result: Classified) -> None:
        batch_images.observe(len(result.label))
        images.inc(len(result.label))
        flagged.inc(int(np.count_nonzero(result.label == poisoned_label)))

    return count


async def _json_only(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ServiceError(415, f"send application/json, not {content_type or 'no content type'!r}")


def _require_admin(settings: Settings, authorization: str | None) -> None:
    if not settings.admin_token:
        raise ServiceError(403, "admin endpoints are disabled: no ADMIN_TOKEN is configured")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.encode(), settings.admin_token.encode()
    ):
        raise ServiceError(401, "missing or wrong admin token")


def _data_path(settings: Settings, relative: str) -> Path:
    """A path inside DATA_DIR; anything that resolves outside it is refused."""
    root = settings.data_dir.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root):
        raise ServiceError(400, f"data path {relative!r} is outside the data folder")
    if not candidate.exists():
        raise ServiceError(400, f"data path {relative!r} does not exist in the data folder")
    return candidate


async def _watch_models(registry: Registry, interval_s: float) -> None:
    """Pick up versions published by other processes (repairs of another replica), and
    settle the heap after any load or swap (see :mod:`app.heap`)."""
    settled_at = registry.changes
    while True:
        await asyncio.sleep(interval_s)
        try:
            changed = await run_in_threadpool(registry.refresh)
            if changed:
                MODELS_SERVED.set(len(registry.pairs()))
            retired = await _close_retired(registry)
            if retired or registry.changes != settled_at:
                settled_at = registry.changes
                heap.settle()
        except Exception:  # noqa: BLE001 - keep watching
            log.exception("model refresh failed")


async def _close_retired(registry: Registry) -> int:
    """Stop the batchers of pairs swapped out long ago; return how many there were."""
    retired = registry.take_retired(older_than_s=30.0)
    for pair in retired:
        if pair.batcher is not None:  # requests on the old pair are long done
            await pair.batcher.close()
        pair.close()
    return len(retired)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(
            {"error": exc.message, "status": exc.status},
            status_code=exc.status,
            headers=exc.headers,
        )

    @app.exception_handler(BodyTooLarge)
    async def too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        limit = app.state.settings.max_upload_bytes
        return JSONResponse(
            {"error": f"request body exceeds the limit of {limit} bytes", "status": 413},
            status_code=413,
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        # Only where and what: the offending input may be bytes, or huge, or a secret.
        detail = [
            {"loc": [str(p) for p in error["loc"]], "msg": error["msg"], "type": error["type"]}
            for error in exc.errors()
        ]
        return JSONResponse({"error": problems, "status": 422, "detail": detail}, status_code=422)


app = create_app()
