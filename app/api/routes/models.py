"""The served model pairs."""

from fastapi import APIRouter, Request

from app.api.deps import service
from app.api.schemas import ModelInfo, ModelsResponse

router = APIRouter(tags=["models"])


@router.get(
    "/models",
    summary="Served model pairs: shapes, filter rule, runtime and metrics",
    response_model=ModelsResponse,
)
async def models(request: Request) -> ModelsResponse:
    registry = service(request).registry
    return ModelsResponse(
        default=registry.default_model,
        models=[ModelInfo.of(pair) for pair in registry.pairs().values()],
        refused=dict(registry.refused),
    )
