"""The local OpenID Connect provider (oidc/provider.js, oidc-provider from npm) as a process, and
signing in to it over plain HTTP as a browser would: authorization code with PKCE (S256) through
its development login form.

`python -m devtools.oidc alice` prints an access token for alice from the provider `make run`
started (AUTH_ISSUER, default http://127.0.0.1:3999).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

REPO = Path(__file__).resolve().parents[1]
OIDC_DIR: Final = REPO / "oidc"
PAGE_CLIENT_ID: Final = "orders-page"
RESOURCE: Final = "urn:orders"
SCOPE: Final = "openid orders:read orders:write"
LOCAL_PORT: Final = 3999


class ProviderFailed(RuntimeError):
    """The provider is not installed, exited, or did not answer in time."""


@dataclass
class LocalProvider:
    """`node oidc/provider.js` on 127.0.0.1:`port` for the page at `redirect_uris`."""

    port: int
    redirect_uris: Sequence[str]
    keys_file: Path
    users: Sequence[str] = ("alice", "bob", "carol")
    operators: Sequence[str] = ()
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "OIDC_PORT": str(self.port),
            "OIDC_REDIRECT_URIS": ",".join(self.redirect_uris),
            "OIDC_CLIENT_ID": PAGE_CLIENT_ID,
            "OIDC_USERS": ",".join(self.users),
            "OIDC_OPERATORS": ",".join(self.operators),
            "OIDC_KEYS_FILE": str(self.keys_file),
        }

    def auth_env(self) -> dict[str, str]:
        """What the services need to trust this provider."""
        return {
            "AUTH_ISSUER": self.issuer,
            "AUTH_AUDIENCE": "orders",
            "AUTH_JWKS_URL": self.issuer + "/jwks",
        }

    def launch(self, output: IO[bytes] | int | None = None, **popen: object) -> LocalProvider:
        if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
            raise ProviderFailed(
                f"{OIDC_DIR}/node_modules is missing: run `make oidc` (npm ci) first"
            )
        self.popen = subprocess.Popen(  # type: ignore[call-overload]
            ["node", "provider.js"],
            cwd=OIDC_DIR,
            env={**os.environ, **self.env()},
            stdout=output,
            stderr=subprocess.STDOUT,
            **popen,
        )
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise ProviderFailed(f"the OIDC provider exited with {self.popen.returncode}")
            try:
                url = f"{self.issuer}/.well-known/openid-configuration"
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise ProviderFailed(f"the OIDC provider did not answer on {self.issuer} in {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def sign_in(
    issuer: str,
    user: str,
    redirect_uri: str,
    client_id: str = PAGE_CLIENT_ID,
    scope: str = SCOPE,
) -> str:
    """An access token for `user`: the code flow with PKCE through the development login.
    The provider grants `orders:read-any` only to its OIDC_OPERATORS, and only if asked."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(16)
    with httpx.Client(timeout=10) as client:
        response = client.get(
            f"{issuer}/auth",
            params={
                "client_id": client_id,
                "response_type": "code",
                "redirect_uri": redirect_uri,
                "scope": scope,
                "resource": RESOURCE,
                "state": state,
                "code_challenge": challenge.rstrip(b"=").decode(),
                "code_challenge_method": "S256",
            },
        )
        for _ in range(10):
            location = response.headers.get("location")
            if location is None:
                raise ProviderFailed(f"no redirect from {response.url}: {response.status_code}")
            location = urljoin(str(response.url), location)
            if location.startswith(redirect_uri):
                break
            page = client.get(location)
            if page.status_code != 200:
                response = page
                continue
            # The development login form, then the consent form.
            form = (
                {"prompt": "login", "login": user, "password": "dev"}
                if 'name="login"' in page.text
                else {"prompt": "consent"}
            )
            response = client.post(location, data=form)
        else:
            raise ProviderFailed("the sign-in did not come back to the redirect URI")
        query = parse_qs(urlsplit(location).query)
        if query.get("state") != [state] or "code" not in query:
            raise ProviderFailed(f"the sign-in came back without a code: {query}")
        token = client.post(
            f"{issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "redirect_uri": redirect_uri,
                "client_id": client_id,
                "code_verifier": verifier,
            },
        )
        if token.status_code != 200:
            raise ProviderFailed(f"the token endpoint refused: {token.text}")
        access_token: str = token.json()["access_token"]
        return access_token


def main(argv: Sequence[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: python -m devtools.oidc USER [EXTRA_SCOPE]  (a token from AUTH_ISSUER)")
        return 2
    issuer = os.environ.get("AUTH_ISSUER", f"http://127.0.0.1:{LOCAL_PORT}")
    scope = " ".join([SCOPE, *argv[1:]])
    print(sign_in(issuer, argv[0], "http://127.0.0.1:8001/", scope=scope))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
