"""A pure ASGI middleware adding the browser security headers to every answer: a strict
Content-Security-Policy (this origin only, plus the origins the page must call), no MIME
sniffing, no framing, no referrer leaving the origin.

FastAPI's own /docs and /redoc load Swagger UI and ReDoc from a CDN with inline script, so they
get every header but the policy.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_PATHS = ("/docs", "/redoc")


def content_security_policy(connect_origins: Iterable[str] = ()) -> str:
    connect = " ".join(["'self'", *sorted(set(connect_origins))])
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


def security_headers(connect_origins: Iterable[str] = ()) -> list[tuple[bytes, bytes]]:
    """Every answer's security headers (the policy last: the docs pages go without it)."""
    return [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (b"content-security-policy", content_security_policy(connect_origins).encode()),
    ]


class SecurityHeaders:
    def __init__(self, app: ASGIApp, connect_origins: Iterable[str] = ()) -> None:
        self.app = app
        *self._headers, self._csp = security_headers(connect_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(self._headers)
        if not scope["path"].startswith(DOCS_PATHS):
            extra.append(self._csp)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
