"""Access policy port: may this client have this image? Tiered access arrives in a later issue.

Decisions are values, not exceptions, so the HTTP layer maps them in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Allowed:
    pass


@dataclass(frozen=True, slots=True)
class Denied:
    reason: str


Decision = Allowed | Denied


class Policy(Protocol):
    def decide(self, identifier: str) -> Decision: ...


class OpenPolicy:
    """Every image is public."""

    def decide(self, identifier: str) -> Decision:
        return Allowed()
