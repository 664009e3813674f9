"""The derivative cache port the image pipeline calls; backends arrive with issue 3.

A cache only changes how fast a response comes, never what it says: keys
carry the source fingerprint, so a replaced master is a different key.
"""

from __future__ import annotations

from typing import Protocol


class Cache(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...


class NullCache:
    """Caches nothing: every lookup misses."""

    def get(self, key: str) -> bytes | None:
        return None

    def put(self, key: str, value: bytes) -> None:
        return None
