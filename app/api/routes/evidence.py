"""Admin: the evidence store of flagged inputs (list, fetch, export, delete)."""

import io
import json
import sqlite3
import tarfile
import time

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from app.api.deps import admin_access, service
from app.api.errors import ServiceError
from app.api.schemas import ERRORS, Deleted, ErrorBody, EvidenceList, EvidenceRecord
from app.serving.evidence import EvidenceStore

router = APIRouter(prefix="/evidence", tags=["admin"], dependencies=[Depends(admin_access)])
UNAVAILABLE = {503: {"model": ErrorBody, "description": "the evidence store is unavailable"}}


async def _call(function, *args: object):  # its result
    """Run a store read off the event loop; an unreadable store is a 503."""
    try:
        return await run_in_threadpool(function, *args)
    except sqlite3.Error as exc:
        raise ServiceError(503, f"the evidence store cannot be read: {exc}") from exc


def _store(request: Request) -> EvidenceStore:
    return service(request).evidence


@router.get(
    "",
    summary="Admin: flagged inputs, newest first",
    response_model=EvidenceList,
    responses={**ERRORS, **UNAVAILABLE},
)
async def list_evidence(
    request: Request,
    model: str | None = None,
    before: int | None = Query(None, description="only records with a smaller id"),
    limit: int = Query(100, ge=1, le=1000),
) -> EvidenceList:
    rows = await _call(_store(request).list, model, before, limit)
    next_before = rows[-1]["id"] if len(rows) == limit else None
    return EvidenceList(records=[EvidenceRecord(**row) for row in rows], next_before=next_before)


@router.get(
    "/export",
    summary="Admin: every record (records.jsonl) and kept image, as a .tar.gz",
    response_class=Response,
    responses={200: {"content": {"application/gzip": {}}}, **ERRORS, **UNAVAILABLE},
)
async def export_evidence(request: Request) -> Response:
    archive = await _call(_archive, _store(request))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    disposition = f'attachment; filename="evidence-{stamp}.tar.gz"'
    return Response(
        archive, media_type="application/gzip", headers={"Content-Disposition": disposition}
    )


@router.get(
    "/{record_id}",
    summary="Admin: one flagged input's record",
    response_model=EvidenceRecord,
    responses={**ERRORS, **UNAVAILABLE},
)
async def get_evidence(request: Request, record_id: int) -> EvidenceRecord:
    row = await _call(_store(request).get, record_id)
    if row is None:
        raise ServiceError(404, f"no evidence record {record_id}")
    return EvidenceRecord(**row)


@router.get(
    "/{record_id}/image",
    summary="Admin: the flagged image itself, when EVIDENCE_KEEP_IMAGES kept it",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}}, **ERRORS, **UNAVAILABLE},
)
async def get_evidence_image(request: Request, record_id: int) -> Response:
    image = await _call(_store(request).image, record_id)
    if image is None:
        raise ServiceError(404, f"no image kept for evidence record {record_id}")
    return Response(image, media_type=_media_type(image))


@router.delete(
    "",
    summary="Admin: delete every record (or a model's)",
    response_model=Deleted,
    responses={**ERRORS, **UNAVAILABLE},
)
async def delete_evidence(request: Request, model: str | None = None) -> Deleted:
    return Deleted(deleted=await _call(_store(request).delete, model))


@router.delete(
    "/{record_id}",
    summary="Admin: delete one record",
    response_model=Deleted,
    responses={**ERRORS, **UNAVAILABLE},
)
async def delete_evidence_record(request: Request, record_id: int) -> Deleted:
    deleted = await _call(_store(request).delete, None, record_id)
    if not deleted:
        raise ServiceError(404, f"no evidence record {record_id}")
    return Deleted(deleted=deleted)


def _archive(store: EvidenceStore) -> bytes:
    buffer, lines = io.BytesIO(), []
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for record, image in store.export():
            lines.append(json.dumps(record))
            if image is not None:
                _add(tar, f"images/{record['id']}{_suffix(image)}", image)
        _add(tar, "records.jsonl", ("\n".join(lines) + "\n" if lines else "").encode())
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(time.time())
    tar.addfile(info, io.BytesIO(data))


SIGNATURES = {b"\x89PNG": ("image/png", ".png"), b"\xff\xd8\xff": ("image/jpeg", ".jpg")}


def _media_type(image: bytes) -> str:
    return next((t for sig, (t, _) in SIGNATURES.items() if image.startswith(sig)), "image/*")


def _suffix(image: bytes) -> str:
    return next((s for sig, (_, s) in SIGNATURES.items() if image.startswith(sig)), ".bin")
