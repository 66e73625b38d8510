"""The served model pairs."""

from fastapi import APIRouter, Request

import modelstore
from app.api.deps import service
from app.api.schemas import ERRORS, ModelInfo, ModelsResponse, ModelVersions, VersionInfo

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


@router.get(
    "/models/{name}/versions",
    summary="A served model's published versions: when, by whom, from what, and how well",
    response_model=ModelVersions,
    responses=ERRORS,
)
async def versions(request: Request, name: str) -> ModelVersions:
    pair = service(request).pair(name)
    out = service(request).registry.models_dir / pair.name
    current = modelstore.current_version(out)
    listed = []
    for version in modelstore.list_versions(out):
        folder = modelstore.ModelFolder(modelstore.ModelFolder(out).versions / version)
        try:
            manifest = modelstore.read_manifest(folder.manifest)
        except modelstore.ManifestError:
            continue  # an unreadable version is not one to list or roll back to
        if manifest is not None:
            listed.append(VersionInfo.of(manifest, current=version == current))
    return ModelVersions(
        name=pair.name,
        versions=listed,
        rollback=f"POST /models/{pair.name}/rollback (admin)",
    )
