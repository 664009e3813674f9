"""Render each derivative once when many ask at the same moment (stampede protection).

Within a process, concurrent callers for one key wait for the first one's result (the leader's).
Across processes and hosts, when Redis is on, a lock decides who renders; the others poll the
shared cache for the result.

Waiters wait for as long as the render is alive, not for a fixed time: a waiter that rendered
by itself after a few seconds doubled the CPU of exactly the slow renders a stampede is made of
(measured: four identical 18-CPU-second requests cost 75 s). In a process the leader cannot
vanish without finishing; across processes its lock says whether it lives: the holder renews it
every ``lock_ttl / 3`` while it renders, so the lock expires ``lock_ttl`` after its holder died,
and a waiter takes over only then (or at once when the holder released it without a result; a
holder whose render ran out of time leaves its lock to expire, so nobody retries it).
``wait`` bounds every wait (the render's own limit, see ``services.py``): nothing waits forever.

Clients that disconnect: each caller may pass ``cancelled``; the render is abandoned
(``Abandoned`` turns true) only when every caller waiting for it in this process has gone, so
a leader whose client leaves keeps rendering for its waiters. If it was stopped all the same
(a waiter joined at that instant, or another process's render gave up), a waiter that is still
wanted takes over rather than fail.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from ..errors import ClientGone, RenderTimeout
from . import Cache
from .redis import UNAVAILABLE, RedisCache

_POLL = 0.02  # seconds between looks at the shared cache while another process renders
_TICK = 0.1  # seconds between a waiter's looks at its own client while it waits in-process

#: True once the caller's client has gone (the render may be stopped when every caller's has).
Abandoned = Callable[[], bool]
Produce = Callable[[Abandoned], bytes]


@dataclass
class _Call:
    done: threading.Event = field(default_factory=threading.Event)
    result: bytes | None = None
    error: BaseException | None = None
    interest: list[Abandoned | None] = field(default_factory=list)  # one per caller; None: never leaves

    def abandoned(self) -> bool:
        return all(gone is not None and gone() for gone in self.interest)


class SingleFlight:
    def __init__(self, cache: Cache, locks: RedisCache | None = None, wait: float = 40.0, lock_ttl: float = 10.0):
        self.cache = cache
        self.locks = locks
        self.wait = wait  # seconds a caller waits for another's render, at most
        self.lock_ttl = lock_ttl
        self._calls: dict[str, _Call] = {}
        self._mutex = threading.Lock()

    def run(self, key: str, produce: Produce, cancelled: Abandoned | None = None) -> bytes:
        """``produce(abandoned)``'s bytes for ``key``, computed once across concurrent callers, and cached."""
        end = time.monotonic() + self.wait
        while True:
            with self._mutex:
                call = self._calls.get(key)
                leader = call is None
                if call is None:
                    call = self._calls[key] = _Call()
                call.interest.append(cancelled)
            if leader:
                return self._lead(key, call, produce, end)
            self._follow(call, cancelled, end)
            if call.error is None:
                assert call.result is not None
                return call.result
            if not isinstance(call.error, ClientGone) or (cancelled is not None and cancelled()):
                raise call.error
            # the leader's render was abandoned, but this caller still wants it: lead the next one

    def _follow(self, call: _Call, cancelled: Abandoned | None, end: float) -> None:
        """Wait for the leader of this process, which cannot vanish without setting ``done``."""
        while not call.done.wait(_TICK if cancelled is not None else max(0.0, end - time.monotonic())):
            if cancelled is not None and cancelled():
                raise ClientGone("the client disconnected while waiting for the same render")
            if time.monotonic() >= end:
                raise self._too_long()

    def _lead(self, key: str, call: _Call, produce: Produce, end: float) -> bytes:
        try:
            call.result = self._across_processes(key, produce, call.abandoned, end)
            return call.result
        except BaseException as error:
            call.error = error
            raise
        finally:
            call.done.set()
            with self._mutex:
                self._calls.pop(key, None)

    def _across_processes(self, key: str, produce: Produce, abandoned: Abandoned, end: float) -> bytes:
        if self.locks is None:
            return self._produce_and_store(key, produce, abandoned)
        while True:
            token = self.locks.acquire(key, self.lock_ttl)
            if token is UNAVAILABLE:
                return self._produce_and_store(key, produce, abandoned)
            if isinstance(token, str):
                keep = False
                try:
                    finished = self.cache.get(key)  # another process may have finished just before we locked
                    if finished is not None:
                        return finished
                    with self._renewing(key, token):
                        return self._produce_and_store(key, produce, abandoned)
                except RenderTimeout:
                    # it would run out of time again: the lock is left to expire, so waiters elsewhere
                    # give up at their bound instead of taking over a render as hopeless
                    keep = True
                    raise
                finally:
                    if not keep:
                        self.locks.release(key, token)
            value = self._await_holder(key, abandoned, end)
            if value is not None:
                return value
            # the holder died (its lock expired) or stopped without a result: take over

    def _await_holder(self, key: str, abandoned: Abandoned, end: float) -> bytes | None:
        """The holder's result from the shared cache, or None once its lock is gone without one."""
        assert self.locks is not None
        while True:
            time.sleep(_POLL)
            value = self.cache.get(key)
            if value is not None:
                return value
            if not self.locks.held(key):
                return self.cache.get(key)  # stored just before it released
            if abandoned():
                raise ClientGone("the client disconnected while waiting for the same render")
            if time.monotonic() >= end:
                raise self._too_long()

    @contextlib.contextmanager
    def _renewing(self, key: str, token: str) -> Iterator[None]:
        """Keep the lock while the render runs: renewed every ``lock_ttl / 3`` from a timer thread."""
        assert self.locks is not None
        locks, stop = self.locks, threading.Event()

        def renew() -> None:
            while not stop.wait(self.lock_ttl / 3):
                locks.extend(key, token, self.lock_ttl)

        renewer = threading.Thread(target=renew, name="flight-lock", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()

    def _too_long(self) -> RenderTimeout:
        return RenderTimeout(
            f"waited {self.wait:g} s for the same image being rendered; try again later",
            retry_after=max(1, math.ceil(self.wait / 4)),
        )

    def _produce_and_store(self, key: str, produce: Produce, abandoned: Abandoned) -> bytes:
        value = produce(abandoned)
        self.cache.put(key, value)
        return value
