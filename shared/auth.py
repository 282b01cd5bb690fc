"""Who is asking: the authentication settings both services share, the principal a bearer token
stands for, the rules on what it may do, and the token verifier port with its PyJWT adapter.

Imports no web framework; shared/access.py is the FastAPI edge over it.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Protocol

import jwt
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode

from shared.events import USER_ID_PATTERN
from shared.exceptions import Forbidden, NotAuthenticated

READ_ANY_SCOPE: Final = "orders:read-any"
# Only asymmetric algorithms: a verifier holding public keys must never accept an HMAC made with
# one of them as the secret, nor an unsigned token.
ASYMMETRIC_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
LOCAL_ISSUER: Final = "http://127.0.0.1:3999"


class AuthSettings(BaseSettings):
    """Where bearer tokens come from. The defaults name the local development provider that
    `make run` starts (oidc/); a deployment sets its own issuer."""

    auth_issuer: str = Field(LOCAL_ISSUER, pattern=r"^https?://\S+$")
    auth_audience: str = Field("orders", min_length=1)
    # Unset: the issuer's /jwks (where oidc-provider serves its keys).
    auth_jwks_url: str | None = Field(None, pattern=r"^https?://\S+$")
    auth_algorithms: Annotated[tuple[str, ...], NoDecode] = ("RS256", "ES256")
    # Seconds a fetched key is trusted before the JWKS is asked again (an unknown kid asks at once).
    auth_jwks_cache_s: int = Field(300, ge=1, le=86_400)
    # Never the default: with it, whoever calls may act as any user (logged at every start).
    auth_disabled: bool = False

    @field_validator("auth_algorithms", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("auth_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        refused = sorted(set(value) - ASYMMETRIC_ALGORITHMS)
        if refused or not value:
            raise ValueError(
                f"only asymmetric algorithms ({', '.join(sorted(ASYMMETRIC_ALGORITHMS))}), "
                f"not {', '.join(refused) or 'none'}"
            )
        return value

    @property
    def jwks_url(self) -> str:
        return self.auth_jwks_url or self.auth_issuer.rstrip("/") + "/jwks"


@dataclass(frozen=True)
class Principal:
    """The user a verified token stands for (its `sub`) and the scopes it was granted."""

    sub: str
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def reads_any(self) -> bool:
        return READ_ANY_SCOPE in self.scopes


def ensure_may_read(principal: Principal | None, user_id: str) -> None:
    """A user reads only their own view; `orders:read-any` reads anyone's. None: auth is off."""
    if principal is not None and principal.sub != user_id and not principal.reads_any:
        raise Forbidden(f"{principal.sub!r} may not read {user_id!r}'s orders")


def acting_user(principal: Principal | None, named: str | None) -> str | None:
    """Who an order is placed for: the token's subject; a body naming someone else is refused.
    With auth off, whoever the body names (None if it names no one)."""
    if principal is None:
        return named
    if named is not None and named != principal.sub:
        raise Forbidden(f"{principal.sub!r} may not place orders for {named!r}")
    return principal.sub


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> Principal:
        """The principal `token` stands for; NotAuthenticated if it does not verify."""
        ...


# Tokens verified recently, so that a client's next requests skip the signature check (160 us
# each here); bounded, the oldest forgotten first.
VERIFIED_CACHE_SIZE: Final = 10_000


class JwksVerifier:
    """Verifies JWTs with PyJWT against the issuer's JWKS (PyJWKClient).

    Keys are cached per `kid`; an unknown `kid` fetches the JWKS again (in a worker thread, so a
    slow issuer never blocks the event loop), subject to PyJWKClient's cooldown. A token that
    verified is remembered (the exact string) until its `exp`: tokens are not revoked here, so
    checking its signature again could only give the same answer.
    """

    def __init__(
        self,
        settings: AuthSettings,
        jwks_client: jwt.PyJWKClient | None = None,
        *,
        leeway_s: float = 0,
    ) -> None:
        self._issuer = settings.auth_issuer
        self._audience = settings.auth_audience
        self._algorithms = list(settings.auth_algorithms)
        self._cache_s = settings.auth_jwks_cache_s
        self._client = jwks_client or jwt.PyJWKClient(
            settings.jwks_url, lifespan=settings.auth_jwks_cache_s, timeout=10
        )
        self._keys: dict[str, tuple[float, jwt.PyJWK]] = {}
        self._leeway_s = leeway_s
        self._verified: dict[str, tuple[float, Principal]] = {}
        # Verifications under way: a crowd arriving with one new token waits for one check
        # (and one key fetch), not one each.
        self._pending: dict[str, asyncio.Future[tuple[Principal, float]]] = {}

    async def verify(self, token: str) -> Principal:
        known = self._verified.get(token)
        if known is not None and known[0] > time.time():
            return known[1]
        pending = self._pending.get(token)
        if pending is not None:
            principal, _ = await asyncio.shield(pending)
            return principal
        future: asyncio.Future[tuple[Principal, float]] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        try:
            principal, expires = await self._verify(token)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a failure nobody else waited for is not logged
            raise
        finally:
            del self._pending[token]
        future.set_result((principal, expires))
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (expires, principal)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise NotAuthenticated(f"malformed token: {exc}") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self._algorithms:
            raise NotAuthenticated(f"algorithm {alg!r} is not accepted")
        if not isinstance(kid, str) or not kid:
            raise NotAuthenticated("the token names no key (kid)")
        key = await self._key(kid)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise NotAuthenticated(f"invalid token: {exc}") from None
        return _principal(claims), float(claims["exp"])

    async def _key(self, kid: str) -> jwt.PyJWK:
        cached = self._keys.get(kid)
        if cached is not None and time.monotonic() - cached[0] < self._cache_s:
            return cached[1]
        try:
            key = await asyncio.to_thread(self._client.get_signing_key, kid)
        except jwt.PyJWKClientError as exc:
            raise NotAuthenticated(f"no signing key for kid {kid[:64]!r}: {exc}") from None
        self._keys[kid] = (time.monotonic(), key)
        return key


def _principal(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or re.fullmatch(USER_ID_PATTERN, sub) is None:
        # The subject becomes the events' user_id, so it must be one.
        raise NotAuthenticated("the token's subject is not a valid user id")
    scope = claims.get("scope", "")
    scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
    return Principal(sub, scopes)
