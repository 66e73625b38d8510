"""``POST /predict``: classify uploaded face images through the filter."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.deps import service
from app.api.explanations import as_json, explain_choice, explain_chosen
from app.api.schemas import ERRORS, PREDICT_OPENAPI, PredictResponse
from app.api.uploads import decode_uploads, read_uploads

router = APIRouter(tags=["inference"])


@router.post(
    "/predict",
    summary="Classify one or more face images",
    description="multipart/form-data with one or more `file` fields, or a raw body with an "
    "`image/*` content type. `label` is B's label, or N when the filter flags the image "
    "(`rule` says which rule answered). With `API_KEYS` set, send a key as `X-API-Key`.",
    response_model=PredictResponse,
    responses=ERRORS,
    openapi_extra=PREDICT_OPENAPI,
)
async def predict(request: Request) -> JSONResponse:
    # The query and body are read here, not by FastAPI's parameter injection: it cost about
    # a twentieth of the event loop per request (``python -m bench``). The answer is built
    # as JSON directly for the same reason; PredictResponse is its declared schema, which
    # the fuzzing test checks every answer against.
    state = service(request)
    pair = state.pair(request.query_params.get("model"))
    batcher = pair.batcher
    batcher.expect()  # the batcher may wait a moment for this request's images
    try:
        uploads = await read_uploads(request, state.settings)
        decoded = await decode_uploads(uploads, pair.input_shape[:2], state.settings)
    finally:
        batcher.cancel_expectation()
    result = await batcher.submit(decoded.rgb)  # uint8: scaled in the inference thread
    state.record_flagged(request, pair, result, uploads)
    chosen = explain_choice(request.query_params.get("explain"), result)
    explained = await explain_chosen(pair, decoded.rgb, result, chosen)
    labels, flagged = result.label.tolist(), result.flagged.tolist()
    bad, repaired = result.bad_label.tolist(), result.repaired_label.tolist()
    confidence, overlap = result.confidence.tolist(), result.overlap.tolist()
    support = result.support.tolist()
    return JSONResponse(
        {
            "model": pair.name,
            "version": pair.version,
            "rule": pair.rule.model_dump(),
            "predictions": [
                {
                    "filename": name,
                    "label": labels[i],
                    "poisoned": flagged[i],
                    "bad_label": bad[i],
                    "repaired_label": repaired[i],
                    "confidence": confidence[i],
                    "overlap": overlap[i],
                    "support": support[i],
                    "resized": decoded.resized[i],
                    **({"explanation": as_json(explained[i])} if i in explained else {}),
                }
                for i, (name, _) in enumerate(uploads)
            ],
        }
    )
