"""Request and response bodies (they also make the OpenAPI schema at /docs)."""

from pydantic import BaseModel, ConfigDict, Field

import repair


class Prediction(BaseModel):
    filename: str
    label: int = Field(description="B's label, or N (the poisoned label) when the filter flags")
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


class Rule(BaseModel):
    kind: str = Field(description="calibrated or strict")
    threshold: float | None = Field(description="overlap below which the calibrated rule flags")
    support_threshold: float | None = Field(
        description="B''s probability of B's label below which the calibrated rule flags"
    )


class PredictResponse(BaseModel):
    model: str
    version: str
    rule: Rule = Field(description="the filter rule that answered")
    predictions: list[Prediction]


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
