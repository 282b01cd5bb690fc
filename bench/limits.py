"""The limits the HTTP benchmarks are measured against, on the same framework and server.

    python -m bench.limits command            # the command app, validating, with no Kafka
    python -m bench.limits constant FILE      # GET /users/{id}/items answering FILE's bytes
    python -m bench.limits flood FILE         # the same as a bare ASGI app that also holds a
                                              # waiter (consistency_token) for its wait_ms and a
                                              # stream until the client leaves

Each listens on BENCH_PORT.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from urllib.parse import parse_qs

import uvicorn
from fastapi import FastAPI, Response
from starlette.types import ASGIApp, Receive, Scope, Send

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


def flood_items(body: bytes) -> ASGIApp:
    """A bare ASGI app (no framework) that does what a flood asks of the query service, and
    nothing else: a plain read answers `body`, a read with a consistency token waits its wait_ms
    and answers 503, a stream stays open until the client leaves."""
    plain = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, query = scope["path"], parse_qs(scope["query_string"].decode())
        if path.endswith("/items/stream"):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b": open\n\n", "more_body": True})
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        if "consistency_token" in query:
            await asyncio.sleep(int(query.get("wait_ms", ["5000"])[0]) / 1000)
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await send({"type": "http.response.start", "status": 200, "headers": plain})
        await send({"type": "http.response.body", "body": body})

    return app


def main(argv: list[str]) -> int:
    app: ASGIApp
    if argv[:1] == ["command"]:
        app = command_without_kafka()
    elif argv[:1] == ["constant"] and len(argv) == 2:
        app = constant_items(Path(argv[1]).read_bytes())
    elif argv[:1] == ["flood"] and len(argv) == 2:
        app = flood_items(Path(argv[1]).read_bytes())
    else:
        print(__doc__, file=sys.stderr)
        return 2
    port = int(os.environ["BENCH_PORT"])
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
