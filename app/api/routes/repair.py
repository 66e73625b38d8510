"""Admin: regenerate B' in a worker process and swap it in (``POST /repair``)."""

from pathlib import Path

from fastapi import APIRouter, Depends, Request

import modelstore
from app.api.deps import admin_access, json_body, service
from app.api.errors import ServiceError
from app.api.schemas import RepairRequest
from app.core.config import Settings

# Access is checked before the body is even parsed: strangers learn nothing from 422s.
router = APIRouter(tags=["admin"], dependencies=[Depends(admin_access)])


@router.post(
    "/repair",
    status_code=202,
    summary="Admin: regenerate B' in the background",
    dependencies=[Depends(json_body)],
)
async def start_repair(request: Request, body: RepairRequest) -> dict:
    state = service(request)
    pair = state.registry.get(body.model)
    if pair is None:
        raise ServiceError(404, f"unknown model {body.model!r}")
    settings = state.settings
    spec = {
        "model": pair.name,
        "bad_model": str(modelstore.ModelFolder(pair.folder).bad_model),
        "clean_data": str(_data_path(settings, body.clean_data)),
        "poisoned_data": [str(_data_path(settings, p)) for p in body.poisoned_data],
        "target": body.target,
        "clean_test": str(_data_path(settings, body.clean_test)) if body.clean_test else None,
        "out": str(settings.models_dir / pair.name),
        "options": body.options.model_dump(mode="json"),
    }
    job = state.jobs.start(pair.name, spec)  # JobConflict: 409
    return {"job_id": job.id, "status": job.status, "status_url": f"/repair/{job.id}"}


@router.get("/repair/{job_id}", summary="Admin: status of a repair job")
async def repair_status(request: Request, job_id: str) -> dict:
    job = service(request).jobs.get(job_id)
    if job is None:
        raise ServiceError(404, f"unknown repair job {job_id!r}")
    return job.describe()


def _data_path(settings: Settings, relative: str) -> Path:
    """A path inside DATA_DIR; anything that resolves outside it is refused."""
    root = settings.data_dir.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root):
        raise ServiceError(400, f"data path {relative!r} is outside the data folder")
    if not candidate.exists():
        raise ServiceError(400, f"data path {relative!r} does not exist in the data folder")
    return candidate
