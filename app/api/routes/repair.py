"""Admin: regenerate B' in a worker process and swap it in (``POST /repair``).

A replica without TensorFlow (the serving image) sends these requests on to ``REPAIR_URL``,
a replica that can repair; the new version reaches every replica through the shared
models folder.
"""

import importlib.util
from pathlib import Path

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

import modelstore
from app.api.access import token_id
from app.api.deps import admin_access, json_body, service
from app.api.errors import ServiceError
from app.api.schemas import (
    ERRORS,
    ErrorBody,
    RepairAccepted,
    RepairJobStatus,
    RepairRequest,
    RolledBack,
)
from app.core.config import Settings

INPUT_CHECK_WAIT_S = 120.0
"""How long ``POST /repair`` waits for the worker to load and check the model and the data
(seconds: TensorFlow's import, then the files), so that bad input gets a 422 with its
reason; past it, the answer is 202 and the job reports the outcome."""

# Access is checked before the body is even parsed: strangers learn nothing from 422s.
router = APIRouter(tags=["admin"], dependencies=[Depends(admin_access)])


@router.post(
    "/repair",
    status_code=202,
    summary="Admin: regenerate B' in the background",
    dependencies=[Depends(json_body)],
    response_model=RepairAccepted,
    responses={**ERRORS, 502: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
async def start_repair(request: Request, body: RepairRequest) -> Response:
    state = service(request)
    if state.settings.repair_url:
        return await _forward(request, "/repair", body.model_dump(mode="json"))
    if importlib.util.find_spec("tensorflow") is None:
        raise ServiceError(
            503, "this replica cannot repair (no TensorFlow): set REPAIR_URL to a repair replica"
        )
    pair = state.pair(body.model)
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
        "published_by": f"POST /repair (admin token {token_id(settings.admin_token)})",
    }
    job = state.jobs.start(pair.name, spec)  # JobConflict: 409
    # Bad input is the client's to fix: answer it here, with the repair's one line.
    await run_in_threadpool(job.wait_for_input_check, INPUT_CHECK_WAIT_S)
    if job.bad_input:
        raise ServiceError(422, job.error or "the repair refused its inputs")
    accepted = RepairAccepted(job_id=job.id, status=job.status, status_url=f"/repair/{job.id}")
    return JSONResponse(accepted.model_dump(), status_code=202)


@router.get(
    "/repair/{job_id}",
    summary="Admin: status of a repair job",
    response_model=RepairJobStatus,
    responses={**ERRORS, 502: {"model": ErrorBody}},
)
async def repair_status(request: Request, job_id: str) -> Response:
    if service(request).settings.repair_url:
        return await _forward(request, f"/repair/{job_id}")
    job = service(request).jobs.get(job_id)
    if job is None:
        raise ServiceError(404, f"unknown repair job {job_id!r}")
    return JSONResponse(RepairJobStatus(**job.describe()).model_dump())


@router.post(
    "/models/{name}/rollback",
    summary="Admin: serve the version published before the current one",
    response_model=RolledBack,
    responses={**ERRORS, 409: {"model": ErrorBody}},
)
async def rollback(request: Request, name: str) -> RolledBack:
    state = service(request)
    pair = state.pair(name)
    try:
        version = await run_in_threadpool(
            modelstore.rollback, state.registry.models_dir / pair.name
        )
    except FileNotFoundError as exc:
        raise ServiceError(409, str(exc)) from exc
    await run_in_threadpool(state.registry.refresh)
    return RolledBack(name=pair.name, version=version)


def _data_path(settings: Settings, relative: str) -> Path:
    """A path inside DATA_DIR; anything that resolves outside it is refused."""
    root = settings.data_dir.resolve()
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root):
        raise ServiceError(400, f"data path {relative!r} is outside the data folder")
    if not candidate.exists():
        raise ServiceError(400, f"data path {relative!r} does not exist in the data folder")
    return candidate


async def _forward(request: Request, path: str, body: dict | None = None) -> JSONResponse:
    """The repair replica's answer to the same request (its status and JSON body)."""
    url = service(request).settings.repair_url.rstrip("/") + path
    headers = {"authorization": request.headers.get("authorization", "")}
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            if body is None:
                answer = await client.get(url, headers=headers)
            else:
                answer = await client.post(url, json=body, headers=headers)
        content = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ServiceError(502, f"the repair replica at REPAIR_URL did not answer: {exc}") from exc
    return JSONResponse(content, status_code=answer.status_code)
