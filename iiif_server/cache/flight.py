"""Render each derivative once when many ask at the same moment (stampede protection).

Within a process, concurrent callers for one key wait for the first one's
result. Across processes and hosts, when Redis is on, a short lock decides who
renders; the others poll the shared cache for the result. Nobody waits forever:
after ``wait`` seconds a waiter renders by itself, and a lock dies with its TTL,
so a worker that crashes while holding it cannot deadlock the rest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import Cache
from .redis import UNAVAILABLE, RedisCache

_POLL = 0.02  # seconds between looks at the shared cache while another host renders


@dataclass
class _Call:
    done: threading.Event = field(default_factory=threading.Event)
    result: bytes | None = None
    error: BaseException | None = None


class SingleFlight:
    def __init__(self, cache: Cache, locks: RedisCache | None = None, wait: float = 10.0, lock_ttl: float = 30.0):
        self.cache = cache
        self.locks = locks
        self.wait = wait
        self.lock_ttl = lock_ttl
        self._calls: dict[str, _Call] = {}
        self._mutex = threading.Lock()

    def run(self, key: str, produce: Callable[[], bytes]) -> bytes:
        """``produce()``'s bytes for ``key``, computed once across concurrent callers, and cached."""
        with self._mutex:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
        if not leader:
            if call.done.wait(self.wait):
                if call.error is not None:
                    raise call.error
                assert call.result is not None
                return call.result
            return self._produce_and_store(key, produce)  # the leader is stuck: do it ourselves
        try:
            call.result = self._across_hosts(key, produce)
            return call.result
        except BaseException as error:
            call.error = error
            raise
        finally:
            call.done.set()
            with self._mutex:
                self._calls.pop(key, None)

    def _across_hosts(self, key: str, produce: Callable[[], bytes]) -> bytes:
        if self.locks is None:
            return self._produce_and_store(key, produce)
        token = self.locks.acquire(key, self.lock_ttl)
        if token is UNAVAILABLE:
            return self._produce_and_store(key, produce)
        if isinstance(token, str):
            try:
                finished = self.cache.get(key)  # another host may have finished just before we locked
                return finished if finished is not None else self._produce_and_store(key, produce)
            finally:
                self.locks.release(key, token)
        deadline = time.monotonic() + self.wait  # another worker or host is rendering it
        while time.monotonic() < deadline:
            time.sleep(_POLL)
            value = self.cache.get(key)
            if value is not None:
                return value
        return self._produce_and_store(key, produce)

    def _produce_and_store(self, key: str, produce: Callable[[], bytes]) -> bytes:
        value = produce()
        self.cache.put(key, value)
        return value
