"""Who may call the inference endpoints: optional API keys and a per-client rate limit.

Keys come from ``API_KEYS`` and are sent as ``X-API-Key`` or ``Authorization: Bearer``;
they are compared in constant time and never logged. The rate limit (``RATE_LIMIT``, e.g.
``100/second``) uses the ``limits`` package's moving window, in memory per worker, keyed
by API key when keys are on, else by client address.
"""

import hashlib
import hmac
import time

from limits import parse, storage, strategies

from app.api.errors import ServiceError


class AccessControl:
    """Checks one request; raises :class:`ServiceError` 401 or 429."""

    def __init__(self, api_keys: tuple[str, ...] = (), rate_limit: str | None = None) -> None:
        self._keys = tuple(key.encode() for key in api_keys)
        self._limit = parse(rate_limit) if rate_limit else None
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

    @property
    def keys_on(self) -> bool:
        """Inference needs an API key."""
        return bool(self._keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys) or self._limit is not None

    def check(self, client_host: str | None, presented_key: str | None) -> None:
        """Allow the request, or raise 401 (no or wrong key) or 429 (over the rate)."""
        client = self._client_id(client_host, presented_key)
        if self._limit is not None and not self._limiter.hit(self._limit, client):
            reset_at, _ = self._limiter.get_window_stats(self._limit, client)
            retry_after = max(1, int(reset_at - time.time()) + 1)
            raise ServiceError(
                429,
                f"rate limit of {self._limit} exceeded; retry after {retry_after} s",
                {"Retry-After": str(retry_after)},
            )

    def _client_id(self, client_host: str | None, presented_key: str | None) -> str:
        if not self._keys:
            return f"ip:{client_host or 'unknown'}"
        key = (presented_key or "").encode()
        # Compare with every key (no early exit) so that timing tells nothing.
        matches = [hmac.compare_digest(key, known) for known in self._keys]
        if not any(matches):
            raise ServiceError(
                401, "missing or wrong API key (X-API-Key header)", {"WWW-Authenticate": "Bearer"}
            )
        # Rate-limit per key; a digest, so the key itself is never kept as a storage key.
        return "key:" + hashlib.sha256(key).hexdigest()[:16]


def token_id(token: str | None) -> str:
    """A name for a key or token that records and logs may hold: a hash prefix, never the
    secret itself."""
    if not token:
        return "none"
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def admin_allowed(admin_token: str | None, presented: str | None) -> None:
    """Allow an admin request, or raise 403 (admin endpoints off) or 401 (wrong token)."""
    if not admin_token:
        raise ServiceError(403, "admin endpoints are disabled: no ADMIN_TOKEN is configured")
    if presented is None or not hmac.compare_digest(presented.encode(), admin_token.encode()):
        raise ServiceError(401, "missing or wrong admin token", {"WWW-Authenticate": "Bearer"})
