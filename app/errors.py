"""One error type for the HTTP layer: a status code and a message, rendered as JSON."""


class ServiceError(Exception):
    """An error answered to the client as ``{"error": message, "status": status}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
