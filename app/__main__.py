"""``python -m app``: serve with uvicorn, configured from the environment."""

import uvicorn

from app.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    uvicorn.run(
        "app.main:app",
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        workers=settings.workers,
        http=settings.http_parser,  # auto: httptools (faster); h11 limits the head itself
    )


if __name__ == "__main__":
    main()
