"""A stand-in OpenID Connect issuer for tests: keys generated here, their JWKS served over real
HTTP on 127.0.0.1, and access tokens minted for any user, as oidc-provider mints them.

The services verify these tokens exactly as they verify a real issuer's (PyJWKClient fetching
the JWKS); only the sign-in itself is skipped. tests/e2e/test_web_page.py signs in through the
real provider in oidc/.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Generator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE: Final = "orders"
USER_SCOPES: Final = ("orders:read", "orders:write")


class TestIssuer:
    __test__ = False  # not a pytest class

    def __init__(self, audience: str = AUDIENCE) -> None:
        self.audience = audience
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwks: dict[str, Any] = {
            "keys": [
                {**json.loads(ECAlgorithm.to_jwk(self.ec_key.public_key())), "kid": "ec-1"},
                {**json.loads(RSAAlgorithm.to_jwk(self.rsa_key.public_key())), "kid": "rsa-1"},
            ]
        }
        self.jwks_requests = 0
        self.minted: list[str] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/jwks":
                    self.send_error(404)
                    return
                issuer.jwks_requests += 1
                body = json.dumps(issuer.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def jwks_url(self) -> str:
        return self.url + "/jwks"

    def env(self) -> dict[str, str]:
        """What a service process needs to trust this issuer."""
        return {
            "AUTH_ISSUER": self.url,
            "AUTH_AUDIENCE": self.audience,
            "AUTH_JWKS_URL": self.jwks_url,
        }

    def settings(self) -> dict[str, Any]:
        """The same as settings fields, for a service's settings built in a test."""
        return {key.lower(): value for key, value in self.env().items()}

    def mint(
        self,
        sub: str,
        scopes: Sequence[str] = USER_SCOPES,
        *,
        lifetime_s: int = 900,
        not_before_s: int | None = None,
        claims: Mapping[str, Any] | None = None,
        algorithm: str = "ES256",
        key: Any = None,
        kid: str | None = None,
    ) -> str:
        """An access token for `sub` as the issuer would sign it; the keywords make bad ones."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "jti": uuid.uuid4().hex,
            "sub": sub,
            "iat": now,
            "exp": now + lifetime_s,
            "iss": self.url,
            "aud": self.audience,
            "client_id": "test",
            "scope": " ".join(scopes),
        }
        if not_before_s is not None:
            payload["nbf"] = now + not_before_s
        payload.update(claims or {})
        if key is None:
            key = self.ec_key if algorithm.startswith("ES") else self.rsa_key
        if kid is None:
            kid = "ec-1" if algorithm.startswith("ES") else "rsa-1"
        token = jwt.encode(payload, key, algorithm, headers={"kid": kid, "typ": "at+jwt"})
        # For the tests that check no token ever reaches a log.
        self.minted.append(token)
        return token

    def headers(self, sub: str, scopes: Sequence[str] = USER_SCOPES) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mint(sub, scopes)}"}

    def auth(self) -> ActAsNamedUser:
        """An httpx auth that signs each request as the user it names."""
        return ActAsNamedUser(self)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class ActAsNamedUser(httpx.Auth):
    """Signs each request as the user it names: the `{id}` of a /users/{id}/ path, or the
    `user_id` of an order's JSON body. Requests naming no one go without a token."""

    requires_request_body = True

    def __init__(self, issuer: TestIssuer) -> None:
        self._issuer = issuer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        user = _named_user(request)
        if user is not None and "authorization" not in request.headers:
            request.headers["Authorization"] = f"Bearer {self._issuer.mint(user)}"
        yield request


def _named_user(request: httpx.Request) -> str | None:
    parts = request.url.path.split("/")
    if len(parts) > 2 and parts[1] == "users":
        return parts[2]
    if request.method == "POST" and request.url.path.endswith("/orders") and request.content:
        try:
            body = json.loads(request.content)
        except ValueError:
            return None
        named = body.get("user_id") if isinstance(body, dict) else None
        return named if isinstance(named, str) else None
    return None
