"""ASGI middleware that refuses oversized requests before the application parses them:
431 for a request head over a byte limit, 413 for a body over another."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import BodyTooLarge, error_response


class RequestSizeLimit:
    """Answers 431 when the headers are over ``max_header_bytes`` (uvicorn's httptools
    parser has no limit of its own), and 413 when Content-Length is over ``max_bytes`` or
    the streamed body (chunked, or a client that lies) passes it."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_header_bytes: int = 16384) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        if sum(len(name) + len(value) for name, value in headers) > self.max_header_bytes:
            message = f"request headers exceed {self.max_header_bytes} bytes"
            await _refuse(scope, receive, send, 431, message)
            return
        declared = dict(headers).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(scope, receive, send, self.max_bytes)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _too_large(scope, receive, send, self.max_bytes)


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    await _refuse(scope, receive, send, 413, BodyTooLarge.message(limit))


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, text: str) -> None:
    """The error answer every route gives (``app.api.errors``), and the connection closed:
    the rest of the request is not read."""
    response = error_response(status, text, {"connection": "close"}, scope.get("path", ""))
    await response(scope, receive, send)
