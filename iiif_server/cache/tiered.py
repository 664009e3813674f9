"""Memory first, then the shared tier (Redis or disk); hits from the shared tier warm memory.

Here the tier that answers is decided, so here hits and misses are counted per tier and
the request's note learns which tier answered (``metrics.note_tier``; None for a miss).

A purge must reach every worker's memory tier, which no process can touch from
outside. The shared tier keeps a purge *epoch*; each worker compares it at most
once a second and drops its memory tier when it moved. Correctness never
depends on this (keys carry fingerprints); it makes an explicit purge total.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from ..metrics import MEMORY, MEMORY_HIT, MEMORY_MISS, SHARED, SHARED_HIT, SHARED_MISS, note_tier
from . import Cache
from .memory import MemoryCache


class SharedTier(Cache, Protocol):
    def epoch(self) -> str: ...

    def bump_epoch(self) -> None: ...


class TieredCache:
    def __init__(self, memory: MemoryCache | None, shared: SharedTier | None, epoch_interval: float = 1.0) -> None:
        self.memory = memory
        self.shared = shared
        self.epoch_interval = epoch_interval
        self._epoch = shared.epoch() if shared is not None else "0"
        self._checked = time.monotonic()
        self._lock = threading.Lock()
        self._generation = 0  # moves whenever the memory tier is purged
        self._checking = False

    def memory_generation(self) -> int | None:
        """Which memory-tier contents answers kept elsewhere (``replay``) were made from.

        None while the purge epoch is due for its check, as for ``peek``. That check needs the
        shared tier, so it never runs here (the caller is the event loop): a thread is started
        to make it, since traffic answered from replays alone would never reach a ``get``.
        """
        if not self._epoch_due():
            return self._generation
        if not self._checking:
            threading.Thread(target=self._check_epoch, name="purge-epoch", daemon=True).start()
        return None

    def _epoch_due(self) -> bool:
        """Is a purge-epoch check due? Never without both a memory and a shared tier."""
        return (
            self.memory is not None
            and self.shared is not None
            and time.monotonic() - self._checked >= self.epoch_interval
        )

    def _check_epoch(self) -> None:
        """Compare the shared tier's purge epoch, at most once per ``epoch_interval``, one check at
        a time. The check counts as made only once a moved epoch has purged the memory tier."""
        if self.shared is None or self.memory is None or not self._epoch_due():
            return
        with self._lock:
            if self._checking:
                return
            self._checking = True
        try:
            epoch = self.shared.epoch()
            if epoch != self._epoch:
                self._epoch = epoch
                self._generation += 1
                self.memory.purge()
            self._checked = time.monotonic()
        finally:
            self._checking = False

    def get(self, key: str) -> bytes | None:
        self._check_epoch()
        if self.memory is not None:
            value = self.memory.get(key)
            if value is not None:
                MEMORY_HIT.inc()
                note_tier(MEMORY)
                return value
            MEMORY_MISS.inc()
        if self.shared is not None:
            value = self.shared.get(key)
            if value is not None:
                SHARED_HIT.inc()
                note_tier(SHARED)
                if self.memory is not None:
                    self.memory.put(key, value)
                return value
            SHARED_MISS.inc()
        note_tier(None)
        return None

    def peek(self, key: str) -> bytes | None:
        """The memory tier alone, for the event loop: never touches the shared tier.

        None also when the purge epoch is due for its check (``memory_generation``): traffic
        answered only here must not outlive a purge. A miss is left for the ``get`` that follows
        on a thread to count.
        """
        if self.memory is None or self._epoch_due():
            return None
        value = self.memory.get(key)
        if value is not None:
            MEMORY_HIT.inc()
            note_tier(MEMORY)
        return value

    def put(self, key: str, value: bytes) -> None:
        if self.memory is not None:
            self.memory.put(key, value)
        if self.shared is not None:
            self.shared.put(key, value)

    def purge(self, identifier: str | None = None) -> int:
        count = 0
        if self.shared is not None:
            count += self.shared.purge(identifier)
            self.shared.bump_epoch()
        if self.memory is not None:
            count += self.memory.purge(identifier)
        self._generation += 1
        return count
