"""The application factory: ``create_app(settings)`` wires the routes, the middleware, the
error handlers and the model lifecycle; it does no work of its own.

Serve with ``python -m app`` (settings from the environment), or
``uvicorn --factory app.main:create_app``.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from app.api.deps import ServiceState, inference_access
from app.api.errors import install_error_handlers
from app.api.limits import RequestSizeLimit
from app.api.request_metrics import RequestMetrics
from app.api.routes import evidence, health, models, page, predict, repair, v2
from app.core.config import Settings, load_settings, telemetry_config
from app.serving import heap
from app.serving.jobs import discard_partials
from app.serving.watcher import watch_models


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for ``settings`` (default: from the environment)."""
    settings = settings or load_settings()
    state = ServiceState.create(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if settings.runtime != "onnx":  # ONNX alone never loads TensorFlow
            from app.serving.tensorflow_backend import configure_threads

            configure_threads(settings.infer_threads)  # before TensorFlow runs anything
        await run_in_threadpool(discard_partials, settings.models_dir)
        await run_in_threadpool(state.registry.refresh)
        heap.settle()  # after the models, before the first request
        state.evidence.start()
        watcher = asyncio.create_task(watch_models(state.registry, settings.reload_interval_s))
        yield
        watcher.cancel()
        await state.registry.close()
        await run_in_threadpool(state.evidence.close)

    app = FastAPI(
        title="BadNet filter",
        description="Face recognition that answers N (the N+1-th class) for inputs on which "
        "the received model B and its fine-pruned repair B' disagree: a backdoor trigger.",
        version="0.2.0",
        lifespan=lifespan,
        telemetry=telemetry_config(settings.opentelemetry),
    )
    app.state.service = state
    install_error_handlers(app, settings.max_upload_bytes)
    inference = [Depends(inference_access)] if state.access.enabled else []
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(predict.router, dependencies=inference)
    app.include_router(v2.router)
    app.include_router(v2.infer_router, dependencies=inference)
    app.include_router(repair.router)
    app.include_router(evidence.router)
    app.include_router(page.router)
    # Pure ASGI middleware, outermost last: sizes are refused before anything is parsed.
    app.add_middleware(RequestMetrics)
    app.add_middleware(
        RequestSizeLimit,
        max_bytes=settings.max_upload_bytes,
        max_header_bytes=settings.max_header_bytes,
    )
    return app
