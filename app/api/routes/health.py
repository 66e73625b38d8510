"""Liveness, readiness and Prometheus metrics."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import service
from app.api.metrics import REGISTRY

router = APIRouter(tags=["health"])


@router.get("/health", summary="The process is up")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/ready", summary="200 when at least one model pair serves, else 503")
async def ready(request: Request) -> JSONResponse:
    served = sorted(service(request).registry.pairs())
    return JSONResponse(
        {"ready": bool(served), "models": served}, status_code=200 if served else 503
    )


@router.get("/metrics", summary="Prometheus metrics")
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
