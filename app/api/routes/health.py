"""Liveness, readiness and Prometheus metrics."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import service
from app.api.metrics import REGISTRY
from app.api.schemas import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/health", summary="The process is up", response_model=Health)
async def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    summary="200 when at least one model pair serves, else 503",
    response_model=Ready,
    responses={503: {"model": Ready}},
)
async def ready(request: Request) -> JSONResponse:
    served = sorted(service(request).registry.pairs())
    answer = Ready(ready=bool(served), models=served)
    return JSONResponse(answer.model_dump(), status_code=200 if served else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
