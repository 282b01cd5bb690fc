"""The consistency token: where an event landed, or how far a view has applied.

Opaque to clients; here it is `v1:<partition>:<offset>`. A reader that has applied `offset` on
`partition` has seen everything the token stands for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.exceptions import MalformedToken

_FORMAT = re.compile(r"v1:(\d{1,6}):(-1|\d{1,19})")


@dataclass(frozen=True, slots=True)
class ConsistencyToken:
    partition: int
    offset: int

    def encode(self) -> str:
        return f"v1:{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> ConsistencyToken:
        match = _FORMAT.fullmatch(text.strip())
        if match is None:
            raise MalformedToken(text, "expected the token exactly as the command service sent it")
        return cls(partition=int(match[1]), offset=int(match[2]))
