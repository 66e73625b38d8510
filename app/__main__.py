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
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
