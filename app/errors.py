"""One error type for the HTTP layer: a status code and a message, rendered as JSON."""


class ServiceError(Exception):
    """An error answered to the client as ``{"error": message, "status": status}``, with
    optional response ``headers`` (``Retry-After``, ``WWW-Authenticate``)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
