"""What the routes depend on: the service's state, and who may call what."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.api.access import AccessControl, admin_allowed
from app.api.errors import ServiceError
from app.api.metrics import BATCH_IMAGES, FLAGGED, IMAGES, MODELS_SERVED, REPAIRS
from app.core.config import Settings
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
        return cls(settings, registry, jobs, AccessControl(settings.api_keys, settings.rate_limit))

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
    service(request).access.check(client, presented)


async def admin_access(request: Request, credentials: Bearer) -> None:
    admin_allowed(
        service(request).settings.admin_token, credentials.credentials if credentials else None
    )


async def json_body(request: Request) -> None:
    """415 unless the body is declared JSON (checked before FastAPI parses it)."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ServiceError(415, f"send application/json, not {content_type or 'no content type'!r}")


def _batch_counter(pair: ModelPair) -> Callable[[Classified], None]:
    """Counts each batch's images and flagged images (run in the inference thread)."""
    batch_images, images, flagged = (
        BATCH_IMAGES.labels(pair.name),
        IMAGES.labels(pair.name),
        FLAGGED.labels(pair.name),
    )

    def count(result: Classified) -> None:
        batch_images.observe(len(result))
        images.inc(len(result))
        flagged.inc(int(np.count_nonzero(result.flagged)))

    return count
