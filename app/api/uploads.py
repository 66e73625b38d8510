"""Read the uploaded images of a /predict request and decode them, shared by the service
and the benchmark's reference servers (so both pay exactly the same for it)."""

from dataclasses import dataclass

import numpy as np
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request

from app.api.errors import BodyTooLarge, ServiceError
from app.api.images import DecodedImage, decode_image
from app.core.config import Settings

INLINE_DECODE_BYTES = 64 * 1024
"""Uploads up to this size are decoded on the event loop; larger ones in a thread."""


async def read_uploads(request: Request, settings: Settings) -> list[tuple[str, bytes]]:
    """The (file name, bytes) of each upload: multipart ``file`` fields, or a raw image body.

    Errors: 400 malformed multipart, 413 body too large, 415 other content types, 422 no
    image field.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=settings.max_files, max_fields=settings.max_files)
        except BodyTooLarge:
            raise
        except Exception as exc:  # malformed multipart, too many parts
            raise ServiceError(400, f"cannot parse the multipart body: {exc}") from exc
        files = [item for item in form.getlist("file") if isinstance(item, UploadFile)]
        if not files:
            raise ServiceError(422, "no 'file' field with an image in the multipart form")
        uploads = [(item.filename or f"file{i}", await item.read()) for i, item in enumerate(files)]
        await form.close()
        return uploads
    if content_type.startswith("image/"):
        return [("body", await request.body())]
    if not content_type:
        raise ServiceError(422, "send multipart/form-data with 'file' fields, or an image/* body")
    raise ServiceError(
        415, f"unsupported content type {content_type!r}; send multipart/form-data or image/*"
    )


@dataclass(frozen=True)
class DecodedUploads:
    """A request's images as one uint8 array (N, H, W, 3) at the model's size, and which
    of them were resized."""

    rgb: np.ndarray
    resized: list[bool]


async def decode_uploads(
    uploads: list[tuple[str, bytes]], size_hw: tuple[int, int], settings: Settings
) -> DecodedUploads:
    """Decode every upload to the model's input size, stacked in the decoding thread (the
    inference thread then joins whole requests, not single images); raises
    :class:`ServiceError`."""

    def decode_all() -> DecodedUploads:
        images: list[DecodedImage] = [
            decode_image(data, name, size_hw, settings.max_image_pixels) for name, data in uploads
        ]
        return DecodedUploads(
            np.stack([image.rgb for image in images]), [image.resized for image in images]
        )

    if sum(len(data) for _, data in uploads) <= INLINE_DECODE_BYTES:
        return decode_all()  # cheaper than a thread hop for a few small faces
    return await run_in_threadpool(decode_all)
