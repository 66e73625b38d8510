"""Pure ASGI middleware counting requests and latency per route (cheaper than
``@app.middleware("http")``, which wraps every response in extra tasks)."""

import time
from collections.abc import Awaitable, Callable

from app.api.metrics import LATENCY, REQUESTS


class RequestMetrics:
    """Records ``badnet_filter_requests_total`` and ``badnet_filter_request_seconds``."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", "unmatched")
            REQUESTS.labels(endpoint, str(status)).inc()
            LATENCY.labels(endpoint).observe(time.perf_counter() - started)
