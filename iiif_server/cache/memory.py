"""Per-process LRU of bytes, bounded by total size: the first tier, no I/O at all."""

from __future__ import annotations

import threading
from collections import OrderedDict

from . import group_of


class MemoryCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_item = max(1, max_bytes // 8)  # one huge full/max must not flush every tile
        self.size = 0
        self._data: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: str, value: bytes) -> None:
        if len(value) > self.max_item:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.size -= len(old)
            self._data[key] = value
            self.size += len(value)
            while self.size > self.max_bytes:
                _, evicted = self._data.popitem(last=False)
                self.size -= len(evicted)

    def purge(self, identifier: str | None = None) -> int:
        with self._lock:
            if identifier is None:
                count = len(self._data)
                self._data.clear()
                self.size = 0
                return count
            prefix = group_of(identifier) + ":"
            doomed = [key for key in self._data if key.startswith(prefix)]
            for key in doomed:
                self.size -= len(self._data.pop(key))
            return len(doomed)

    def __len__(self) -> int:
        return len(self._data)
