"""Access policy port: may this client have this image, and how much of it?

Decisions are values, not exceptions, so the HTTP layer maps them in one place. The policy is
asked with the *located file* (``Located``), not the identifier as spelt: one file answers to
several identifiers (with or without its extension, NFC or NFD folder names, a symlink), and
each must get the file's decision. ``levels`` are the access levels the client is authorised
for: the image service asks first anonymously and, only when that is not ``Allowed`` and the request
carries credentials (``credentials.py``), again with the levels of the client's session or token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..image.sources import Located


@dataclass(frozen=True, slots=True)
class Allowed:
    pass


@dataclass(frozen=True, slots=True)
class Degraded:
    """Renders no sharper than the whole image at ``max_size`` pixels on its long side (else 401)."""

    max_size: int


@dataclass(frozen=True, slots=True)
class Denied:
    reason: str
    conceal: bool = False  # answer as if the image did not exist (404), not 403


@dataclass(frozen=True, slots=True)
class Authorised:
    """Allowed by the client's own levels (a session or token) where an anonymous client gets
    ``anonymous``: the answer is for this client only (private, never replayed) and, beyond the
    degraded view, audited under ``user``."""

    user: str
    anonymous: Degraded | Denied


Decision = Allowed | Degraded | Denied | Authorised


@dataclass(frozen=True, slots=True)
class Grant:
    """Who a request's credentials name (a session, a token, an ambient aspect), and the levels they may see."""

    user: str
    levels: frozenset[str]


#: The decisions every request shares (no allocation on the hot path).
ALLOWED = Allowed()
ANONYMOUS: frozenset[str] = frozenset()


class Policy(Protocol):
    def decide(self, source: Located, levels: frozenset[str] = ANONYMOUS) -> Decision: ...

    def stale(self) -> bool:
        """Would deciding now read files (its rules changed)? The event loop asks first and moves
        such a request to a thread, as for any other blocking work."""
        ...


class OpenPolicy:
    """Every image is public."""

    def decide(self, source: Located, levels: frozenset[str] = ANONYMOUS) -> Decision:
        return ALLOWED

    def stale(self) -> bool:
        return False
