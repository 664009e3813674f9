"""Derivative and metadata caches: one interface, three backends, tiered.

A cache only changes how fast a response comes, never what it says: keys carry
the source fingerprint (size, mtime, inode) and the encoder settings, so a
replaced master or a changed quality setting is simply a different key, in
every tier, with no purge needed.

Keys are ``{group}:{name}`` where ``group`` is a hash of the identifier, so one
image's entries can be purged together in every backend.

    Cache (protocol)        get / put / purge
     ├── NullCache          caches nothing
     ├── MemoryCache        per-process LRU bounded in bytes          (memory.py)
     ├── DiskCache          shared by workers, bounded, atomic writes (disk.py)
     ├── RedisCache         shared by hosts, TTL, outage-tolerant     (redis.py)
     └── TieredCache        memory -> shared tier, with purge epochs  (tiered.py)
"""

from __future__ import annotations

import hashlib
from typing import Protocol


def group_of(identifier: str) -> str:
    """The purge group of an identifier: fixed length, filesystem- and Redis-safe."""
    return hashlib.sha1(identifier.encode()).hexdigest()[:24]


def cache_key(identifier: str, name: str) -> str:
    return f"{group_of(identifier)}:{name}"


class Cache(Protocol):
    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...

    def purge(self, identifier: str | None = None) -> int:
        """Drop one image's entries (or all); returns how many were dropped where known."""
        ...


class NullCache:
    """Caches nothing: every lookup misses."""

    def get(self, key: str) -> bytes | None:
        return None

    def put(self, key: str, value: bytes) -> None:
        return None

    def purge(self, identifier: str | None = None) -> int:
        return 0
