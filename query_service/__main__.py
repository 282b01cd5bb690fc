"""`python -m query_service [serve|rebuild]`: serve the API (default) or rebuild the view."""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError

from query_service.settings import QuerySettings

USAGE = "usage: python -m query_service [serve|rebuild]"


def load_settings() -> QuerySettings:
    try:
        return QuerySettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise SystemExit(f"invalid query service settings: {problems}") from None


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "serve"
    if command not in ("serve", "rebuild") or len(argv) > 1:
        print(USAGE, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_settings()
    if command == "rebuild":
        from query_service.rebuild import rebuild

        rebuild(settings)
        return 0
    import uvicorn

    from query_service.app import create_app

    # "auto" picks uvloop and httptools when they are installed.
    uvicorn.run(
        create_app(settings),
        host=settings.query_host,
        port=settings.query_port,
        loop="auto",
        http="auto",
        log_level="info",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
