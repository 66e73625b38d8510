"""Reference servers for the benchmark, on the same stack as the product (FastAPI, uvicorn).

* ``http_limit_app``: parses the same multipart uploads and decodes the images exactly as
  the service does, then answers without running any model (the HTTP limit).
* ``naive_app``: one ``predict()`` per model per request, as the CSAW evaluation scripts do.
"""

import os

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool

import app  # noqa: F401 - Keras 2 environment
from app.images import decode_image
from app.main import _read_uploads
from app.settings import Settings, telemetry_config

SETTINGS = Settings.from_env()
SIZE_HW = (55, 47)

# Configured as the product is (FastAPI's OpenTelemetry hooks off unless OPENTELEMETRY=1).
http_limit_app = FastAPI(telemetry=telemetry_config(SETTINGS.opentelemetry))
naive_app = FastAPI(telemetry=telemetry_config(SETTINGS.opentelemetry))


@http_limit_app.post("/predict")
async def decode_only(request: Request) -> dict:
    uploads = await _read_uploads(request, SETTINGS)
    decoded = await run_in_threadpool(
        lambda: [decode_image(d, n, SIZE_HW, SETTINGS.max_image_pixels) for n, d in uploads]
    )
    return {
        "predictions": [
            {"filename": n, "resized": i.resized}
            for (n, _), i in zip(uploads, decoded, strict=True)
        ]
    }


_MODELS: dict = {}


def _naive_models() -> tuple:
    if not _MODELS:
        import repair

        folder = os.path.join(os.environ.get("MODELS_DIR", "models"), "demo")
        _MODELS["bad"] = repair.load_model_file(os.path.join(folder, "bad.h5"))
        _MODELS["repaired"] = repair.load_model_file(os.path.join(folder, "repaired.h5"))
    return _MODELS["bad"], _MODELS["repaired"]


@naive_app.post("/predict")
async def naive(request: Request) -> dict:
    uploads = await _read_uploads(request, SETTINGS)
    bad, repaired = _naive_models()

    def run() -> list[dict]:
        x = np.stack(
            [decode_image(d, n, SIZE_HW, SETTINGS.max_image_pixels).pixels for n, d in uploads]
        )
        b = bad.predict(x, verbose=0).argmax(1)
        r = repaired.predict(x, verbose=0).argmax(1)
        n_classes = int(bad.output_shape[-1])
        return [{"label": int(bl if bl == rl else n_classes)} for bl, rl in zip(b, r, strict=True)]

    return {"predictions": await run_in_threadpool(run)}
