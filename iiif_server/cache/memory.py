"""Per-process LRU of bytes, bounded by total size: the first tier, no I/O at all."""

from __future__ import annotations

from ..lru import LRU
from . import group_of


class MemoryCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_item = max(1, max_bytes // 8)  # one huge full/max must not flush every tile
        self._lru: LRU[str, bytes] = LRU(max_bytes, weigh=len)

    @property
    def size(self) -> int:
        return self._lru.size

    def get(self, key: str) -> bytes | None:
        return self._lru.get(key)

    def put(self, key: str, value: bytes) -> None:
        if len(value) <= self.max_item:
            self._lru.put(key, value)

    def purge(self, identifier: str | None = None) -> int:
        if identifier is None:
            return self._lru.remove_if(lambda key: True)
        prefix = group_of(identifier) + ":"
        return self._lru.remove_if(lambda key: key.startswith(prefix))

    def __len__(self) -> int:
        return len(self._lru)
