"""What the routes depend on: the service's state, and who may call what."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.api.access import AccessControl, admin_allowed, token_id
from app.api.errors import ServiceError
from app.api.metrics import (
    BATCH_IMAGES,
    EVIDENCE_DROPPED,
    EVIDENCE_RECORDS,
    EXPECTED_OVERRULE_RATE,
    FALSE_FLAG_BUDGET,
    FLAGGED,
    IMAGES,
    MODELS_SERVED,
    OVERRULED,
    REPAIRS,
)
from app.core.config import Settings, evidence_folder
from app.serving.evidence import EvidenceStore, Flagged, StoreLimits
from app.serving.jobs import RepairJobs
from app.serving.pair import Classified, LoadOptions, ModelPair
from app.serving.registry import BatchOptions, Registry


@dataclass
class ServiceState:
    """Everything a request may need, made once per app."""

    settings: Settings
    registry: Registry
    jobs: RepairJobs
    access: AccessControl
    evidence: EvidenceStore

    @classmethod
    def create(cls, settings: Settings) -> "ServiceState":
        load = LoadOptions(
            runtime=settings.runtime,
            onnx_max_batch=settings.onnx_max_batch,
            threads=settings.infer_threads,
            filter_rule=settings.filter_rule,
        )
        batching = BatchOptions(
            settings.max_batch,
            settings.max_batch_wait_ms / 1000.0,
            settings.batch_threads,
            settings.share_from,
        )
        registry = Registry(
            settings.models_dir, settings.default_model, load, batching, _batch_counter
        )
        MODELS_SERVED.set_function(lambda: len(registry.pairs()))
        jobs = RepairJobs(
            on_success=lambda model: registry.refresh(),
            on_finish=lambda outcome: REPAIRS.labels(outcome).inc(),
        )
        evidence = EvidenceStore(
            evidence_folder(settings),
            StoreLimits(
                max_records=settings.evidence_max_records,
                max_bytes=settings.evidence_max_bytes,
                keep_images=settings.evidence_keep_images,
            ),
            on_drop=lambda reason: EVIDENCE_DROPPED.labels(reason).inc(),
        )
        access = AccessControl(settings.api_keys, settings.rate_limit)
        return cls(settings, registry, jobs, access, evidence)

    def record_flagged(
        self,
        request: Request,
        pair: ModelPair,
        result: Classified,
        images: list[tuple[str, bytes]] | np.ndarray,
    ) -> None:
        """Send each flagged image of ``result`` to the evidence store (never waits):
        ``images`` are the uploads as sent, or the decoded uint8 batch."""
        client = client_identity(request)
        rule = pair.rule.model_dump()
        for index in np.flatnonzero(result.flagged):
            if isinstance(images, np.ndarray):
                name, content, pixels = f"images[{index}]", b"", images[index]
            else:
                (name, content), pixels = images[index], None
            EVIDENCE_RECORDS.inc()
            self.evidence.record(
                Flagged(
                    model=pair.name,
                    version=pair.version,
                    rule=rule,
                    label=int(result.label[index]),
                    bad_label=int(result.bad_label[index]),
                    repaired_label=int(result.repaired_label[index]),
                    confidence=float(result.confidence[index]),
                    overlap=float(result.overlap[index]),
                    support=float(result.support[index]),
                    client=client,
                    filename=name,
                    content=content,
                    pixels=pixels,
                )
            )

    def pair(self, name: str | None, version: str | None = None) -> ModelPair:
        """The named pair (at ``version``, when given), or the default; the one place that
        decides "unknown model": 400 when several serve and none is named, else 404."""
        pair = self.registry.get(name)
        if pair is not None:
            if version is not None and version != pair.version:
                message = f"model {pair.name!r} serves version {pair.version}, not {version!r}"
                raise ServiceError(404, message)
            return pair
        served = self.registry.pairs()
        if name is None and served:
            raise ServiceError(
                400, f"several models are served; name one ({', '.join(sorted(served))})"
            )
        raise ServiceError(404, f"unknown model {name!r}" if name else "no model served")


def client_identity(request: Request) -> str:
    """Who sent ``request``, as records may keep it: the id of the API key that
    :func:`inference_access` accepted (when keys are on), and the client's address."""
    address = request.client.host if request.client else "unknown"
    key_id = getattr(request.state, "key_id", None)
    return f"key {key_id} from {address}" if key_id else f"address {address}"


def service(request: Request) -> ServiceState:
    return request.app.state.service


api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="one of API_KEYS (when they are set)"
)
bearer = HTTPBearer(auto_error=False, description="an API key, or ADMIN_TOKEN for admin routes")


ApiKey = Annotated[str | None, Security(api_key_header)]
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]


async def inference_access(request: Request, api_key: ApiKey, credentials: Bearer) -> None:
    """API key and rate limit of the inference routes (added only when either is set)."""
    presented = api_key
    if presented is None and credentials is not None:
        presented = credentials.credentials
    client = request.client.host if request.client else None
    access = service(request).access
    access.check(client, presented)
    if access.keys_on:
        request.state.key_id = token_id(presented)  # for records: never the key itself


async def admin_access(request: Request, credentials: Bearer) -> None:
    admin_allowed(
        service(request).settings.admin_token, credentials.credentials if credentials else None
    )


async def json_body(request: Request) -> None:
    """415 unless the body is declared JSON (checked before FastAPI parses it)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ServiceError(415, f"send application/json, not {content_type or 'no content type'!r}")


def expected_flag_rate(pair: ModelPair) -> float | None:
    """The share of clean faces the served rule flags by design: the calibrated rule's
    budget, else the repair's measured false-flag rate (None when neither is known)."""
    if pair.rule.false_flag_budget is not None:
        return pair.rule.false_flag_budget
    if pair.manifest and pair.manifest.metrics:
        metrics = pair.manifest.metrics
        served = metrics.filter if pair.rule.kind == "calibrated" else metrics.filter_strict
        return served.false_positive_rate if served else None
    return None


def expected_overrule_rate(pair: ModelPair) -> float | None:
    """The share of clean faces the served rule answers with B''s label, as the repair
    measured it (0 for the strict rule, None when unknown)."""
    if pair.rule.kind == "strict" or pair.rule.overrule_below is None:
        return 0.0
    metrics = pair.manifest.metrics if pair.manifest else None
    return metrics.filter.overruled_rate if metrics else None


def _batch_counter(pair: ModelPair) -> Callable[[Classified], None]:
    """Counts each batch's images, flagged and overruled ones (run in the inference thread)."""
    batch_images, images, flagged, overruled = (
        BATCH_IMAGES.labels(pair.name),
        IMAGES.labels(pair.name, pair.version),
        FLAGGED.labels(pair.name, pair.version),
        OVERRULED.labels(pair.name, pair.version),
    )
    budget = expected_flag_rate(pair)
    if budget is not None:
        FALSE_FLAG_BUDGET.labels(pair.name).set(budget)
    overrule_rate = expected_overrule_rate(pair)
    if overrule_rate is not None:
        EXPECTED_OVERRULE_RATE.labels(pair.name).set(overrule_rate)

    def count(result: Classified) -> None:
        batch_images.observe(len(result))
        images.inc(len(result))
        flagged.inc(int(np.count_nonzero(result.flagged)))
        overruled.inc(int(np.count_nonzero(result.overruled)))

    return count
