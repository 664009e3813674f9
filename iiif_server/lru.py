"""A small thread-safe LRU map, bounded by entry count.

Used for identifier -> path resolutions, image layouts and open image
handles; gunicorn threads share one per worker process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
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
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        with self._lock:
            self._data.pop(key, None)

    def get_or_create(self, key: K, create: Callable[[], V]) -> V:
        """Create outside the lock: two threads may both create; the later one wins, harmlessly."""
        value = self.get(key)
        if value is None:
            value = create()
            self.put(key, value)
        return value

    def __len__(self) -> int:
        return len(self._data)
