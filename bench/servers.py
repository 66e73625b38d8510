"""Reference servers for the benchmark, on the same stack as the product.

* ``http_limit_app``: the service's own stack (FastAPI, uvicorn, its size-limit and metrics
  middleware, its upload reading and decoding, its settled heap) answering without any
  model: the HTTP limit.
* ``naive_app``: one ``predict()`` per model per request, as the CSAW evaluation scripts do.
"""

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.api.images import decode_image
from app.api.limits import RequestSizeLimit
from app.api.request_metrics import RequestMetrics
from app.api.uploads import decode_uploads, read_uploads
from app.core.config import load_settings, telemetry_config
from app.serving import heap
from app.serving.pair import model_input
from modelstore import ModelFolder, read_manifest

SETTINGS = load_settings()
DEMO = ModelFolder(Path(os.environ.get("MODELS_DIR", "models")) / "demo")


def _size_hw() -> tuple[int, int]:
    """The served demo model's input height and width, from its manifest."""
    manifest = read_manifest(DEMO.manifest)
    if manifest is None:
        raise RuntimeError(f"{DEMO.path}: no manifest")
    return manifest.input_shape[0], manifest.input_shape[1]


SIZE_HW = _size_hw()


@contextlib.asynccontextmanager
async def _settled(_: FastAPI) -> AsyncIterator[None]:
    heap.settle()  # as the service does once its models are loaded
    yield


# Configured as the product is (FastAPI's OpenTelemetry hooks off unless OPENTELEMETRY=1).
_http_limit = FastAPI(telemetry=telemetry_config(SETTINGS.opentelemetry), lifespan=_settled)
naive_app = FastAPI(telemetry=telemetry_config(SETTINGS.opentelemetry))


@_http_limit.post("/predict")
async def decode_only(request: Request) -> JSONResponse:
    uploads = await read_uploads(request, SETTINGS)
    decoded = await decode_uploads(uploads, SIZE_HW, SETTINGS)
    return JSONResponse(
        {
            "model": "none",
            "predictions": [
                {"filename": name, "resized": resized}
                for (name, _), resized in zip(uploads, decoded.resized, strict=True)
            ],
        }
    )


# The product's own middleware, in the product's order (see app.main).
_http_limit.add_middleware(RequestMetrics)
_http_limit.add_middleware(
    RequestSizeLimit,
    max_bytes=SETTINGS.max_upload_bytes,
    max_header_bytes=SETTINGS.max_header_bytes,
)
http_limit_app = _http_limit

_MODELS: dict = {}


def _naive_models() -> tuple:
    if not _MODELS:
        import repair

        _MODELS["bad"] = repair.load_model_file(DEMO.bad_model)
        _MODELS["repaired"] = repair.load_model_file(DEMO.repaired_model)
    return _MODELS["bad"], _MODELS["repaired"]


@naive_app.post("/predict")
async def naive(request: Request) -> dict:
    uploads = await read_uploads(request, SETTINGS)
    bad, repaired = _naive_models()

    def run() -> list[dict]:
        x = model_input(
            np.stack(
                [decode_image(d, n, SIZE_HW, SETTINGS.max_image_pixels).rgb for n, d in uploads]
            )
        )
        b = bad.predict(x, verbose=0).argmax(1)
        r = repaired.predict(x, verbose=0).argmax(1)
        n_classes = int(bad.output_shape[-1])
        return [{"label": int(bl if bl == rl else n_classes)} for bl, rl in zip(b, r, strict=True)]

    return {"predictions": await run_in_threadpool(run)}
