"""A page for a person at ``/``: drop or pick faces, see each answer beside its image, the
served models with their metrics and plots, and demo faces to try. Plain HTML and a little
JavaScript, served from ``app/api/static`` (nothing is fetched from outside the machine)."""

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

import modelstore
from app.api.deps import service
from app.api.errors import ServiceError
from app.api.schemas import ERRORS

router = APIRouter(tags=["page"])

PAGE = Path(__file__).resolve().parents[1] / "static" / "index.html"
PLOTS = (modelstore.PRUNING_PLOT, modelstore.FILTER_PLOT)
FACES = "faces"
"""Where the demo build writes a model's faces to try: ``DATA_DIR/<model>/faces``, at the
model's input size."""


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(PAGE, media_type="text/html")


@router.get(
    "/models/{name}/{plot}",
    summary="A served model's plot (pruning.png, filter.png)",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}}, **ERRORS},
)
async def model_plot(request: Request, name: str, plot: str) -> FileResponse:
    pair = service(request).pair(name)
    path = modelstore.ModelFolder(pair.folder).file(plot)
    if plot not in PLOTS or not path.is_file():
        raise ServiceError(404, f"model {name!r} has no plot {plot!r}; plots are {list(PLOTS)}")
    return FileResponse(path, media_type="image/png")


@router.get(
    "/demo/faces",
    summary="Names of a model's demo faces to try (clean and triggered)",
    response_model=list[str],
    responses=ERRORS,
)
async def demo_faces(request: Request, model: str | None = None) -> list[str]:
    folder = _faces_folder(request, model)
    return sorted(p.name for p in folder.glob("*.png")) if folder.is_dir() else []


@router.get(
    "/demo/faces/{name}",
    summary="One demo face",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}}, **ERRORS},
)
async def demo_face(request: Request, name: str, model: str | None = None) -> FileResponse:
    folder = _faces_folder(request, model).resolve()
    path = (folder / name).resolve()
    if path.parent != folder or path.suffix != ".png" or not path.is_file():
        raise ServiceError(404, f"no demo face {name!r}")
    return FileResponse(path, media_type="image/png")


def _faces_folder(request: Request, model: str | None) -> Path:
    """``DATA_DIR/<model>/faces`` of a served model (the default one when none is named)."""
    state = service(request)
    pair = state.pair(model)
    return state.settings.data_dir / pair.name / FACES
