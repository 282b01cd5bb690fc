"""The limits the HTTP benchmarks are measured against, on the same framework and server.

    python -m bench.limits command            # the command app, validating, with no Kafka
    python -m bench.limits constant FILE      # GET /users/{id}/items answering FILE's bytes

Each listens on BENCH_PORT.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Response

from command_service.app import create_app
from command_service.settings import CommandSettings
from devtools.fakes import InMemoryPublisher


def command_without_kafka() -> FastAPI:
    return create_app(
        CommandSettings(), InMemoryPublisher(keep=False), provision_topic=lambda: None
    )


def constant_items(body: bytes) -> FastAPI:
    app = FastAPI()

    @app.get("/users/{user_id}/items")
    async def items(user_id: str) -> Response:
        return Response(body, media_type="application/json")

    @app.get("/health/ready")
    async def ready() -> Response:
        return Response(b'{"status":"ready"}', media_type="application/json")

    return app


def main(argv: list[str]) -> int:
    if argv[:1] == ["command"]:
        app = command_without_kafka()
    elif argv[:1] == ["constant"] and len(argv) == 2:
        app = constant_items(Path(argv[1]).read_bytes())
    else:
        print(__doc__, file=sys.stderr)
        return 2
    port = int(os.environ["BENCH_PORT"])
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
