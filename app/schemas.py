"""Request and response bodies (they also make the OpenAPI schema at /docs)."""

from pydantic import BaseModel, ConfigDict, Field


class Prediction(BaseModel):
    filename: str
    label: int = Field(description="B's label, or N (the poisoned label) when B and B' disagree")
    poisoned: bool
    bad_label: int
    repaired_label: int
    confidence: float = Field(description="B's softmax probability of its label")
    resized: bool = Field(description="the image was resized to the model's input")


class PredictResponse(BaseModel):
    model: str
    version: str
    predictions: list[Prediction]


class RepairOptions(BaseModel):
    """Fine-pruning options (``python -m repair fine-prune --help`` explains each)."""

    model_config = ConfigDict(extra="forbid")

    layer: str | None = None
    max_accuracy_drop: float | None = Field(None, ge=0, le=1)
    prune_fraction: float | None = Field(None, ge=0, le=1)
    holdout_fraction: float | None = Field(None, gt=0, lt=1)
    epochs: int | None = Field(None, ge=1, le=1000)
    batch_size: int | None = Field(None, ge=1, le=4096)
    learning_rate: float | None = Field(None, gt=0, le=1)
    reinit_layers: list[str] | None = None
    sparsity: float | None = Field(None, ge=0, lt=1)
    sparse_layers: list[str] | None = None
    distill: float | None = Field(None, ge=0, le=1)
    temperature: float | None = Field(None, gt=0, le=100)
    augment: bool | None = None
    seed: int | None = None


class RepairRequest(BaseModel):
    """Paths are relative to the service's DATA_DIR."""

    model_config = ConfigDict(extra="forbid")

    model: str
    clean_data: str
    poisoned_data: list[str] = []
    target: int | None = None
    clean_test: str | None = None
    options: RepairOptions = RepairOptions()


PREDICT_OPENAPI = {
    "parameters": [
        {
            "name": "model",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "served model to use (default: DEFAULT_MODEL, or the only one)",
        }
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
