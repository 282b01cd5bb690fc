"""The cluster credential instances show each other to fetch a checkpoint. Pure.

`X-Query-Cluster-Auth: <unix seconds>.<hex HMAC-SHA256>` over the topic, the partition and the
time, keyed by QUERY_CLUSTER_SECRET: only a holder of the secret can make one, one is good for
one partition for a short while, and a user's bearer token is never one.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

CLUSTER_AUTH_HEADER: Final = "X-Query-Cluster-Auth"
# Sent with a checkpoint: the bytes of its files, before they are streamed.
STATE_BYTES_HEADER: Final = "X-Query-Checkpoint-Bytes"
# How far apart the two instances' clocks (and the request's flight) may be.
MAX_SKEW_S: Final = 60


def _mac(secret: bytes, topic: str, partition: int, issued_s: int) -> str:
    message = f"checkpoint\n{topic}\n{partition}\n{issued_s}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign(secret: bytes, topic: str, partition: int, now_s: float) -> str:
    issued = int(now_s)
    return f"{issued}.{_mac(secret, topic, partition, issued)}"


def verify(secret: bytes, header: str, topic: str, partition: int, now_s: float) -> bool:
    issued_text, _, mac = header.partition(".")
    if not issued_text.isdigit() or len(issued_text) > 12 or not mac:
        return False
    issued = int(issued_text)
    if abs(now_s - issued) > MAX_SKEW_S:
        return False
    return hmac.compare_digest(mac, _mac(secret, topic, partition, issued))
