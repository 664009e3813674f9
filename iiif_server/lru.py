"""A small thread-safe LRU map, bounded by total weight (entry count by default).

Used for identifier -> path resolutions, image layouts and pass-through readers
(weight 1 each), and as the memory cache tier (weight = bytes).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _one(value: object) -> int:
    return 1


class LRU(Generic[K, V]):
    def __init__(self, maxsize: int, weigh: Callable[[V], int] = _one) -> None:
        self.maxsize = maxsize
        self.weigh = weigh
        self.size = 0  # total weight held
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        if self.maxsize <= 0:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.size -= self.weigh(old)
            self._data[key] = value
            self.size += self.weigh(value)
            while self.size > self.maxsize and self._data:
                _, evicted = self._data.popitem(last=False)
                self.size -= self.weigh(evicted)

    def pop(self, key: K) -> None:
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.size -= self.weigh(old)

    def remove_if(self, doomed: Callable[[K], bool]) -> int:
        """Remove every entry whose key matches; returns how many."""
        with self._lock:
            keys = [key for key in self._data if doomed(key)]
            for key in keys:
                self.size -= self.weigh(self._data.pop(key))
            return len(keys)

    def get_or_create(self, key: K, create: Callable[[], V]) -> V:
        """Create outside the lock: two threads may both create; the later one wins, harmlessly."""
        value = self.get(key)
        if value is None:
            value = create()
            self.put(key, value)
        return value

    def __len__(self) -> int:
        return len(self._data)
