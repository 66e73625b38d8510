"""``python -m app``: serve with uvicorn, configured from the environment."""

import sys

import uvicorn

from app.core.config import ConfigError, load_settings


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        workers=settings.workers,
        http=settings.http_parser,  # auto: httptools (faster); h11 limits the head itself
        proxy_headers=True,
        # Behind the entry point, X-Forwarded-For names the client (for rate limits and
        # the evidence records), from these addresses only.
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
