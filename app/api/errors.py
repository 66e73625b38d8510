"""The one place where errors become HTTP answers: ``{"error": message, "status": code}``."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.serving.batcher import BatcherClosed
from app.serving.jobs import JobConflict


class ServiceError(Exception):
    """An error answered to the client as ``{"error": message, "status": status}``, with
    optional response ``headers`` (``Retry-After``, ``WWW-Authenticate``)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class BodyTooLarge(Exception):
    """The request body went past the upload limit while streaming in."""

    @staticmethod
    def message(limit: int) -> str:
        return f"request body exceeds the limit of {limit} bytes"


DOMAIN_ERRORS: dict[type[Exception], int] = {
    BatcherClosed: 503,  # the version was swapped out under the request: send it again
    JobConflict: 409,  # a repair of the same model is running
}


def error_response(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    path: str = "",
    detail: list[dict] | None = None,
) -> JSONResponse:
    """The one writer of error bodies: ``{"error", "status"}`` (and ``detail`` for a 422),
    or on ``/v2`` the Open Inference Protocol's error object, ``{"error"}`` alone."""
    if path.startswith("/v2"):
        body: dict = {"error": message}
    else:
        body = {"error": message, "status": status}
        if detail is not None:
            body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI, max_upload_bytes: int) -> None:
    """Answer every known error as JSON with its status code."""

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers, request.url.path)

    for error_type, status in DOMAIN_ERRORS.items():

        async def domain_error(
            request: Request, exc: Exception, status: int = status
        ) -> JSONResponse:
            return error_response(status, str(exc), path=request.url.path)

        app.add_exception_handler(error_type, domain_error)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The framework's own (a body that is not JSON, an unknown path, a wrong method).
        return error_response(exc.status_code, str(exc.detail), exc.headers, request.url.path)

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, exc: BodyTooLarge) -> JSONResponse:
        message = BodyTooLarge.message(max_upload_bytes)
        return error_response(413, message, path=request.url.path)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        # Only where and what: the offending input may be bytes, or huge, or a secret.
        detail = [
            {"loc": [str(p) for p in error["loc"]], "msg": error["msg"], "type": error["type"]}
            for error in exc.errors()
        ]
        return error_response(422, problems, path=request.url.path, detail=detail)
