"""Request and response bodies: every route declares its answer (they also make the
OpenAPI schema at /docs, against which the fuzzing test checks every answer)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

import modelstore
import repair
from app.serving.pair import ModelPair


class ExplanationBody(BaseModel):
    """Where in the image B and B' part ways (occlusion of the filter's disagreement)."""

    heat: list[list[float]] = Field(
        description="rows x columns of overlapping windows, top-left first: how much "
        "covering each window lowers the disagreement (B's log-probability of its label "
        "minus B''s); the trigger's windows are the hottest"
    )
    box: tuple[int, int, int, int] = Field(
        description="the hottest window: top, left, bottom, right (pixels of the model's input)"
    )
    forward_passes: int = Field(description="extra runs of the pair this explanation took")


class Prediction(BaseModel):
    filename: str
    label: int = Field(
        description="N (the poisoned label) when the filter flags; else B's label, or B''s "
        "where the two disagree and B' rules B's label out (the rule's overrule_below)"
    )
    poisoned: bool = Field(description="the filter flagged the image (label is N)")
    bad_label: int = Field(description="B's top label")
    repaired_label: int = Field(description="B''s top label")
    confidence: float = Field(description="B's softmax probability of its label")
    overlap: float = Field(
        description="overlap of B's and B''s output distributions (Bhattacharyya coefficient, "
        "0 to 1); the calibrated rule flags below its threshold"
    )
    support: float = Field(
        description="B''s probability of B's label; the calibrated rule flags below its "
        "support threshold"
    )
    resized: bool = Field(description="the image was resized to the model's input")
    explanation: ExplanationBody | None = Field(
        None, description="with ?explain=true (flagged images) or ?explain=all"
    )


class PredictResponse(BaseModel):
    model: str
    version: str
    rule: modelstore.RuleSpec = Field(description="the filter rule that answered")
    predictions: list[Prediction]


class ErrorBody(BaseModel):
    """Every error of the service's own API (``/v2`` answers ``{"error"}`` alone)."""

    error: str
    status: int
    detail: list[dict[str, Any]] | None = Field(None, description="where a 422 found problems")


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    ready: bool
    models: list[str] = Field(description="names of the served models")


class ModelInfo(BaseModel):
    """One served pair, as ``GET /models`` describes it."""

    name: str
    version: str
    num_classes: int
    poisoned_label: int = Field(description="N: the answer for flagged images")
    input_shape: tuple[int, int, int] = Field(description="height, width, channels")
    runtime: str
    rule: modelstore.RuleSpec
    metrics: modelstore.Metrics | None = Field(description="the repair's figures")

    @classmethod
    def of(cls, pair: ModelPair) -> "ModelInfo":
        return cls(
            name=pair.name,
            version=pair.version,
            num_classes=pair.num_classes,
            poisoned_label=pair.poisoned_label,
            input_shape=pair.input_shape,
            runtime=pair.runtime.name,
            rule=pair.rule,
            metrics=pair.manifest.metrics if pair.manifest else None,
        )


class ModelsResponse(BaseModel):
    default: str | None = Field(description="the model used when a request names none")
    models: list[ModelInfo]
    refused: dict[str, str] = Field(description="model folders not served, and why")


class VersionInfo(BaseModel):
    """One published version of a model, as its manifest records it."""

    version: str
    current: bool = Field(description="the version served now")
    created_at: str | None
    published_by: str | None = Field(description="the command, or the admin token's id")
    bad_model_sha256: str | None = Field(description="SHA-256 of the BadNet file repaired")
    clean_data_sha256: str | None = Field(description="SHA-256 of the defender's clean data")
    clean_accuracy: float | None = Field(description="G's, on the evaluation set")
    false_flag_rate: float | None = Field(description="G's: clean faces answered N")
    attack_success_rate: float | None = Field(description="G's, when poisoned data was given")

    @classmethod
    def of(cls, manifest: modelstore.Manifest, current: bool) -> "VersionInfo":
        inputs = manifest.inputs
        served = manifest.metrics.filter if manifest.metrics else modelstore.RoleMetrics()
        return cls(
            version=manifest.version,
            current=current,
            created_at=manifest.created_at,
            published_by=manifest.published_by,
            bad_model_sha256=(inputs.get("bad_model") or {}).get("sha256"),
            clean_data_sha256=(inputs.get("clean_data") or {}).get("sha256"),
            clean_accuracy=served.clean_accuracy,
            false_flag_rate=served.false_positive_rate,
            attack_success_rate=served.attack_success_rate,
        )


class ModelVersions(BaseModel):
    name: str
    versions: list[VersionInfo] = Field(description="oldest first")
    rollback: str = Field(description="how to go back one version")


class EvidenceRecord(BaseModel):
    """One flagged input, as the evidence store keeps it."""

    id: int
    recorded_at: float = Field(description="Unix time")
    model: str
    version: str
    rule: modelstore.RuleSpec = Field(description="the rule that flagged it")
    label: int
    bad_label: int
    repaired_label: int
    confidence: float
    overlap: float
    support: float
    sha256: str = Field(description="SHA-256 of the image as sent (a PNG of it, from /v2)")
    client: str = Field(description="the API key's id (never the key) and the address")
    filename: str | None
    has_image: bool = Field(description="the image itself is kept (EVIDENCE_KEEP_IMAGES)")


class EvidenceList(BaseModel):
    records: list[EvidenceRecord] = Field(description="newest first")
    next_before: int | None = Field(description="pass as ?before= for the next page")


class Deleted(BaseModel):
    deleted: int


class RolledBack(BaseModel):
    name: str
    version: str = Field(description="the version served now")


class RepairAccepted(BaseModel):
    job_id: str
    status: str
    status_url: str


class RepairJobStatus(BaseModel):
    id: str
    model: str
    status: Literal["queued", "running", "succeeded", "failed"]
    stage: str
    progress: float
    created_at: float
    finished_at: float | None
    version: str | None = Field(description="the version published, once it succeeded")
    metrics: dict[str, Any] | None
    error: str | None
    bad_input: bool


class V2Error(BaseModel):
    error: str


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any]


class InferOutput(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    data: list[Any] | None = Field(None, description="absent when sent as binary data")
    parameters: dict[str, Any] | None = None


class InferResponse(BaseModel):
    """The Open Inference Protocol's answer (its JSON part, with binary outputs)."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[InferOutput]


ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 415, 422, 429)}
"""The error answers a route of the service's own API may give, for its OpenAPI entry."""
V2_ERRORS = {code: {"model": V2Error} for code in (400, 401, 404, 413, 415, 429)}


class RepairRequest(BaseModel):
    """Paths are relative to the service's DATA_DIR."""

    model_config = ConfigDict(extra="forbid")

    model: str
    clean_data: str
    poisoned_data: list[str] = []
    target: int | None = None
    clean_test: str | None = None
    options: repair.RepairOptions = Field(
        default_factory=repair.RepairOptions,
        description="fine-pruning options (python -m repair fine-prune --help explains each)",
    )


PREDICT_OPENAPI = {
    "parameters": [
        {
            "name": "model",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "served model to use (default: DEFAULT_MODEL, or the only one)",
        },
        {
            "name": "explain",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": ["false", "true", "all"]},
            "description": "true: a heat map of why each flagged image was flagged; all: of "
            "every image (each costs one more batch of the pair, 64 windows)",
        },
    ],
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                }
            },
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        },
    },
}
"""/predict reads its query and body itself (several files, or a raw image; FastAPI's
parameter injection cost about a twentieth of the event loop per request): this documents
them."""
