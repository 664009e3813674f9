"""Access policy port: may this client have this image, and how much of it?

Decisions are values, not exceptions, so the HTTP layer maps them in one place. The policy is
asked with the *located file* (``Located``), not the identifier as spelt: one file answers to
several identifiers (with or without its extension, NFC or NFD folder names, a symlink), and
each must get the file's decision. ``levels`` are the access levels the client is authorised
for (none today: every client is anonymous); a later authorised tier passes its session's.
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


Decision = Allowed | Degraded | Denied

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
