"""The PyJWT verifier against a JWKS served over HTTP from keys the test generates: every token
the issuer signed for this audience passes, every other one is refused."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from devtools.issuer import TestIssuer
from shared.auth import AuthSettings, JwksVerifier, Principal, acting_user, ensure_may_read
from shared.exceptions import Forbidden, NotAuthenticated


@pytest.fixture
def verifier(issuer: TestIssuer) -> JwksVerifier:
    return JwksVerifier(AuthSettings(**issuer.settings()))


def verify(verifier: JwksVerifier, token: str) -> Principal:
    return asyncio.run(verifier.verify(token))


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_a_token_of_the_issuer_for_the_audience_is_its_subject(
    verifier: JwksVerifier, issuer: TestIssuer, algorithm: str
) -> None:
    token = issuer.mint("alice", ["orders:read", "orders:read-any"], algorithm=algorithm)
    principal = verify(verifier, token)
    assert principal == Principal("alice", frozenset({"orders:read", "orders:read-any"}))
    assert principal.reads_any


def test_keys_are_fetched_once_and_again_only_for_an_unknown_kid(issuer: TestIssuer) -> None:
    verifier = JwksVerifier(AuthSettings(**issuer.settings()))
    before = issuer.jwks_requests
    for _ in range(5):
        verify(verifier, issuer.mint("alice"))
    assert issuer.jwks_requests == before + 1


def test_a_crowd_with_one_new_token_is_verified_once(
    issuer: TestIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = JwksVerifier(AuthSettings(**issuer.settings()))
    checks: list[str] = []
    original = jwt.decode

    def counting(*args: object, **kwargs: object) -> object:
        checks.append("decode")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counting)
    token, bad = issuer.mint("alice"), _tampered(issuer)

    async def crowd() -> list[Principal | BaseException]:
        return await asyncio.gather(
            *(verifier.verify(t) for t in [token] * 500 + [bad] * 50), return_exceptions=True
        )

    answers = asyncio.run(crowd())
    assert answers[:500] == [answers[0]] * 500
    assert isinstance(answers[0], Principal)
    assert answers[0].sub == "alice"
    assert all(isinstance(a, NotAuthenticated) for a in answers[500:])
    assert len(checks) == 2  # one check for each distinct token, however many asked at once


def _other_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _unsigned(issuer: TestIssuer) -> str:
    header = _b64({"alg": "none", "typ": "JWT", "kid": "ec-1"})
    payload = jwt.decode(issuer.mint("alice"), options={"verify_signature": False})
    return f"{header}.{_b64(payload)}."


def _tampered(issuer: TestIssuer) -> str:
    header, payload, signature = issuer.mint("alice").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{header}.{_b64({**claims, 'sub': 'bob'})}.{signature}"


def _hmac_with_the_public_key(issuer: TestIssuer) -> str:
    # The classic confusion: HS256 keyed with the public key the verifier holds.
    public = issuer.rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    payload = jwt.decode(issuer.mint("alice"), options={"verify_signature": False})
    header = _b64({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"})
    body = _b64(payload)
    mac = hmac.new(public, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


REFUSED = {
    "expired": lambda i: i.mint("alice", lifetime_s=-1),
    "not yet valid": lambda i: i.mint("alice", not_before_s=120),
    "wrong audience": lambda i: i.mint("alice", claims={"aud": "payments"}),
    "wrong issuer": lambda i: i.mint("alice", claims={"iss": "http://evil.example"}),
    "wrong key": lambda i: i.mint("alice", key=_other_ec_key()),
    "unknown kid": lambda i: i.mint("alice", key=_other_ec_key(), kid="rotated-away"),
    "no kid": lambda i: jwt.encode({"sub": "alice"}, i.ec_key, "ES256"),
    "alg none": _unsigned,
    "tampered payload": _tampered,
    "hmac with the public key": _hmac_with_the_public_key,
    "no expiry": lambda i: i.mint("alice", claims={"exp": None}),
    "no subject": lambda i: i.mint("alice", claims={"sub": None}),
    "subject not a user id": lambda i: i.mint("alice@example.com"),
    "not a jwt": lambda i: "not-a-jwt",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_every_other_token_is_refused(
    verifier: JwksVerifier, issuer: TestIssuer, case: str
) -> None:
    token = REFUSED[case](issuer)
    with pytest.raises(NotAuthenticated):
        verify(verifier, token)


def test_only_asymmetric_algorithms_may_be_configured() -> None:
    assert AuthSettings(auth_algorithms="ES256, RS256").auth_algorithms == ("ES256", "RS256")
    for refused in ("HS256", "none", "RS256,HS512", ""):
        with pytest.raises(ValidationError, match="asymmetric"):
            AuthSettings(auth_algorithms=refused)


def test_the_jwks_defaults_to_the_issuers() -> None:
    settings = AuthSettings(auth_issuer="http://127.0.0.1:3999/", auth_jwks_url=None)
    assert settings.jwks_url == "http://127.0.0.1:3999/jwks"
    assert not settings.auth_disabled


def test_users_read_and_order_only_as_themselves() -> None:
    alice = Principal("alice")
    support = Principal("sam", frozenset({"orders:read-any"}))
    ensure_may_read(alice, "alice")
    ensure_may_read(support, "bob")
    ensure_may_read(None, "bob")  # authentication off
    with pytest.raises(Forbidden):
        ensure_may_read(alice, "bob")
    assert acting_user(alice, None) == acting_user(alice, "alice") == "alice"
    assert acting_user(None, "bob") == "bob"
    for principal in (alice, support):
        with pytest.raises(Forbidden):
            acting_user(principal, "bob")
