"""The served model pairs."""

from fastapi import APIRouter, Request

from app.api.deps import service

router = APIRouter(tags=["models"])


@router.get("/models", summary="Served model pairs: shapes, filter rule, runtime and metrics")
async def models(request: Request) -> dict:
    registry = service(request).registry
    return {
        "default": registry.default_model,
        "models": [pair.describe() for pair in registry.pairs().values()],
        "refused": registry.refused,
    }
