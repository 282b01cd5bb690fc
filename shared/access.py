"""The FastAPI edge of authentication, the same in both services: the bearer dependency, the
401/403 answers, and the ops listener that /metrics (and other ops routes) are served on.

A service calls `install_access(app, settings, verifier)` in its composition root; routes take
`PrincipalDep` (None when AUTH_DISABLED) and ops routes add `dependencies=[OPS_ONLY]`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.auth import AuthSettings, JwksVerifier, Principal, TokenVerifier
from shared.exceptions import Forbidden, NotAuthenticated
from shared.http import error_doc, error_response

log = logging.getLogger(__name__)

# Set in the ASGI scope of every request that arrived on the ops listener.
OPS_SCOPE_KEY: Final = "orders.ops_listener"
# What the ops listener serves. It runs on a thread and event loop of its own (so that probes and
# scrapes are answered while the API's loop is saturated): its routes may only read state that
# is safe to read from another thread, never await anything bound to the API's loop.
OPS_PATHS: Final = ("/health/live", "/health/ready", "/metrics")

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        **error_doc("No bearer token, or one that does not verify."),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    403: error_doc("The token's user may not do this."),
}

_bearer = HTTPBearer(
    auto_error=False,
    description="An access token (JWT) from the OpenID Connect issuer in AUTH_ISSUER.",
)


@dataclass(frozen=True)
class Access:
    """How a service authenticates: a verifier, or nobody at all (AUTH_DISABLED)."""

    verifier: TokenVerifier | None

    @property
    def disabled(self) -> bool:
        return self.verifier is None


def install_access(
    app: FastAPI, settings: AuthSettings, verifier: TokenVerifier | None = None
) -> None:
    """Wire authentication into `app`: a given verifier, else PyJWT against AUTH_JWKS_URL."""
    if settings.auth_disabled:
        log.warning(
            "AUTH_DISABLED=true: authentication is OFF, any caller may act as any user. "
            "For experiments only, never in production."
        )
        app.state.access = Access(None)
    else:
        app.state.access = Access(verifier if verifier is not None else JwksVerifier(settings))
    app.add_exception_handler(NotAuthenticated, _not_authenticated)
    app.add_exception_handler(Forbidden, _forbidden)


async def _not_authenticated(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotAuthenticated)
    # The reason is ours (PyJWT's words), never the token itself.
    return error_response(401, exc.reason, {"WWW-Authenticate": 'Bearer error="invalid_token"'})


async def _forbidden(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Forbidden)
    return error_response(403, exc.reason)


async def bearer_principal(request: Request, token: str | None) -> Principal | None:
    """The principal `token` stands for; None when auth is off; NotAuthenticated without one."""
    access: Access = request.app.state.access
    if access.verifier is None:
        return None
    if token is None:
        raise NotAuthenticated("a bearer token is required")
    return await access.verifier.verify(token)


async def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    return await bearer_principal(request, None if credentials is None else credentials.credentials)


PrincipalDep = Annotated[Principal | None, Depends(_principal)]


async def _bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str | None:
    return None if credentials is None else credentials.credentials


# The bearer token as sent (unverified), for routes that also accept another credential.
BearerTokenDep = Annotated[str | None, Depends(_bearer_token)]


def access_disabled(request: Request) -> bool:
    access: Access = request.app.state.access
    return access.disabled


async def _ops_only(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if request.scope.get(OPS_SCOPE_KEY):
        return
    principal = await bearer_principal(
        request, None if credentials is None else credentials.credentials
    )
    if principal is not None and not principal.reads_any:
        raise Forbidden("only on the ops listener, or with the orders:read-any scope")


# Routes for operators (/metrics, /cluster): open on the ops listener, else `orders:read-any`.
OPS_ONLY = Depends(_ops_only)


class OpsListener:
    """The app as the ops listener serves it: only `paths`, each request marked as ops."""

    def __init__(self, app: ASGIApp, paths: tuple[str, ...] = OPS_PATHS) -> None:
        self.app = app
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.paths:
            await error_response(404, "not served on the ops listener")(scope, receive, send)
            return
        if scope["type"] == "http":
            scope = {**scope, OPS_SCOPE_KEY: True}
        await self.app(scope, receive, send)
