"""The Open Inference Protocol (KServe v2) REST API beside the service's own: what Triton's,
KServe's and Seldon's clients and load generators speak.

A model is a served pair. Inputs (one per request): ``images``, a UINT8 tensor
[N, H, W, 3] of RGB pixels at the model's input size (its metadata gives H and W; 55 x 47
for the CSAW net), or ``images_encoded``, a BYTES tensor [N] of PNG/JPEG/BMP/WebP
files (resized like ``/predict``'s uploads). Outputs, one value per image: ``label`` (N when
flagged), ``flagged``, ``bad_label``, ``repaired_label``, ``confidence``, ``overlap``,
``support``.
"""

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.api.deps import ServiceState, service
from app.api.errors import ServiceError
from app.api.explanations import as_tensors, explain_choice, explain_chosen
from app.api.inference_protocol import HEADER_LENGTH, encode_response, parse_request
from app.api.schemas import (
    V2_ERRORS,
    InferResponse,
    Live,
    ModelMetadata,
    ModelReady,
    ServerMetadata,
    TensorMetadata,
    V2Ready,
)
from app.api.uploads import decode_uploads
from app.serving.pair import ModelPair

router = APIRouter(prefix="/v2", tags=["open inference protocol (v2)"])
infer_router = APIRouter(prefix="/v2", tags=["open inference protocol (v2)"])
"""Inference only: the one that API keys and the rate limit guard, as ``/predict``."""

OUTPUTS = {
    "label": ("INT32", "N if flagged; else B's label, or B''s where it overrules B"),
    "flagged": ("BOOL", "the filter flagged the image"),
    "bad_label": ("INT32", "B's top label"),
    "repaired_label": ("INT32", "B''s top label"),
    "confidence": ("FP32", "B's probability of its label"),
    "overlap": ("FP32", "overlap of B's and B''s outputs, which the calibrated rule thresholds"),
    "support": ("FP32", "B''s probability of B's label, which the calibrated rule thresholds"),
}
"""Each answer per image: the filter's, then the pair's own (:data:`modelstore.PAIR_OUTPUTS`)."""
NUMPY_TYPES = {"INT32": np.int32, "BOOL": np.bool_, "FP32": np.float32}


@router.get("", summary="Server metadata", response_model=ServerMetadata)
async def server_metadata(request: Request) -> ServerMetadata:
    return ServerMetadata(
        name="badnet-filter", version=request.app.version, extensions=["binary_tensor_data"]
    )


@router.get("/health/live", summary="200 while the process runs", response_model=Live)
async def live() -> Live:
    return Live(live=True)


@router.get(
    "/health/ready",
    summary="200 when a model pair serves, else 400",
    response_model=V2Ready,
    responses={400: {"model": V2Ready}},
)
async def ready(request: Request) -> JSONResponse:
    served = bool(service(request).registry.pairs())
    return JSONResponse(V2Ready(ready=served).model_dump(), status_code=200 if served else 400)


@router.get(
    "/models/{name}",
    summary="Model metadata: inputs and outputs",
    response_model=ModelMetadata,
    responses=V2_ERRORS,
)
@router.get(
    "/models/{name}/versions/{version}",
    summary="Model metadata of one version",
    response_model=ModelMetadata,
    responses=V2_ERRORS,
)
async def model_metadata(request: Request, name: str, version: str | None = None) -> ModelMetadata:
    pair = service(request).pair(name, version)
    height, width, channels = pair.input_shape
    return ModelMetadata(
        name=pair.name,
        versions=[pair.version],
        platform=f"badnet-filter ({pair.runtime.name})",
        inputs=[
            TensorMetadata(name="images", datatype="UINT8", shape=[-1, height, width, channels]),
            TensorMetadata(name="images_encoded", datatype="BYTES", shape=[-1]),
        ],
        outputs=[
            TensorMetadata(name=output, datatype=datatype, shape=[-1])
            for output, (datatype, _) in OUTPUTS.items()
        ],
        parameters={"poisoned_label": pair.poisoned_label, "rule": pair.rule.model_dump()},
    )


@router.get(
    "/models/{name}/ready",
    summary="200 when the model serves, else 400",
    response_model=ModelReady,
    responses={400: {"model": ModelReady}},
)
@router.get(
    "/models/{name}/versions/{version}/ready",
    summary="Readiness of one version",
    response_model=ModelReady,
    responses={400: {"model": ModelReady}},
)
async def model_ready(request: Request, name: str, version: str | None = None) -> JSONResponse:
    pair = service(request).registry.get(name)
    ready = pair is not None and version in (None, pair.version)
    answer = ModelReady(name=name, ready=ready)
    return JSONResponse(answer.model_dump(), status_code=200 if ready else 400)


@infer_router.post(
    "/models/{name}/infer",
    summary="Classify a batch of face images",
    responses={200: {"model": InferResponse}, **V2_ERRORS},
)
@infer_router.post(
    "/models/{name}/versions/{version}/infer",
    summary="Classify with one version",
    responses={200: {"model": InferResponse}, **V2_ERRORS},
)
async def infer(request: Request, name: str, version: str | None = None) -> Response:
    state = service(request)
    pair = state.pair(name, version)
    height, width, channels = pair.input_shape
    limit = state.settings.max_files * height * width * channels
    body = await request.body()
    parsed = parse_request(body, request.headers.get(HEADER_LENGTH), limit)
    images = await _images(parsed.inputs, pair, state)
    result = await pair.batcher.submit(images)
    state.record_flagged(request, pair, result, images)
    outputs = {
        name: (datatype, getattr(result, name).astype(NUMPY_TYPES[datatype]))
        for name, (datatype, _) in OUTPUTS.items()
    }
    chosen = explain_choice(parsed.parameters.get("explain"), result)
    if chosen is not None:
        explained = await explain_chosen(pair, images, result, chosen)
        outputs |= as_tensors(explained, len(result), pair.windows.rows, pair.windows.cols)
    content, headers = encode_response(pair.name, pair.version, parsed, outputs)
    return Response(content, headers=headers)


async def _images(inputs: list, pair: ModelPair, state: ServiceState) -> np.ndarray:
    """The request's one image input as uint8 (N, H, W, 3)."""
    if len(inputs) != 1 or inputs[0].name not in ("images", "images_encoded"):
        raise ServiceError(400, "send one input: 'images' (UINT8) or 'images_encoded' (BYTES)")
    tensor = inputs[0]
    max_files = state.settings.max_files
    if tensor.name == "images_encoded":
        if tensor.datatype != "BYTES" or len(tensor.shape) != 1:
            raise ServiceError(400, "'images_encoded' must be a BYTES tensor of shape [N]")
        if not 1 <= len(tensor.value) <= max_files:
            raise ServiceError(400, f"send 1 to {max_files} images, not {len(tensor.value)}")
        uploads = [(f"images_encoded[{i}]", data) for i, data in enumerate(tensor.value)]
        return (await decode_uploads(uploads, pair.input_shape[:2], state.settings)).rgb
    expected = [-1, *pair.input_shape]
    if tensor.datatype != "UINT8":
        raise ServiceError(400, f"'images' must be UINT8, not {tensor.datatype}")
    if len(tensor.shape) != 4 or list(tensor.shape[1:]) != expected[1:]:
        raise ServiceError(400, f"'images' must have shape {expected}, not {list(tensor.shape)}")
    if not 1 <= tensor.shape[0] <= max_files:
        raise ServiceError(400, f"send 1 to {max_files} images, not {tensor.shape[0]}")
    return np.ascontiguousarray(tensor.value, dtype=np.uint8)
