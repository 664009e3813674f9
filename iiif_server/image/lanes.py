"""Admission lanes: heavy renders take turns so that tiles and info.json never wait behind them.

A gunicorn gthread worker has a few threads and queues accepted connections FIFO
in front of them; if every thread renders a 100-megapixel ``full/max``, a cached
tile waits seconds at the socket. So a request is classified before any pixel is
touched (``plan.pixel_cost``): below ``[lanes] heavy_pixels`` it runs at once;
above, it needs a slot in this worker's ``Lane`` (``concurrency`` at a time, at most
``queue_length`` waiting, each for at most ``max_wait`` seconds). No slot and no room
to wait is ``LaneFull``: 503 with ``Retry-After`` at once, not a timeout later.

The wait is bounded on its own and does not eat into the render's deadline
(``[server] render_timeout`` starts when the slot is granted): a waiting request
holds one of the worker's threads, so it must give up quickly, while an admitted
render deserves its whole budget. At worst a request takes ``max_wait + render_timeout``.

SIPI runs such lanes per request kind; Cantaloupe bounds its processing pool.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..errors import LaneFull
from ..metrics import LANE_FULL, LANE_QUEUED, LANE_WAIT, LANE_WAIT_EXPIRED

T = TypeVar("T")

_SMOOTHING = 0.2  # weight of the newest render in the running mean that sets Retry-After


@dataclass(frozen=True, slots=True)
class LaneStats:
    """A snapshot for metrics: gauges (``running``, ``queued``) and counters since the worker started."""

    running: int
    queued: int
    admitted: int
    rejected_full: int  # the queue was full on arrival
    rejected_wait: int  # waited ``max_wait`` without getting a slot
    wait_seconds_total: float  # summed over admitted and timed-out waiters
    wait_seconds_max: float
    render_seconds_mean: float  # running mean of the work done in a slot


class Lane:
    """At most ``concurrency`` calls of ``run`` at a time; up to ``queue_length`` more wait ``max_wait``."""

    def __init__(self, concurrency: int, queue_length: int, max_wait: float) -> None:
        if concurrency < 1 or queue_length < 0 or max_wait < 0:
            raise ValueError("a lane needs concurrency >= 1, queue_length >= 0 and max_wait >= 0")
        self.concurrency = concurrency
        self.queue_length = queue_length
        self.max_wait = max_wait
        self._changed = threading.Condition()
        self._running = 0
        self._queued = 0
        self._admitted = 0
        self._rejected_full = 0
        self._rejected_wait = 0
        self._wait_total = 0.0
        self._wait_max = 0.0
        self._render_mean = 0.0

    def run(self, work: Callable[[], T]) -> T:
        """``work()`` in a slot, however it ends the slot is given back; ``LaneFull`` if none comes."""
        self._enter()
        started = time.monotonic()
        try:
            return work()
        finally:
            elapsed = time.monotonic() - started
            with self._changed:
                self._running -= 1
                mean = self._render_mean
                self._render_mean = elapsed if mean == 0 else mean + _SMOOTHING * (elapsed - mean)
                self._changed.notify()

    def stats(self) -> LaneStats:
        with self._changed:
            return LaneStats(
                self._running,
                self._queued,
                self._admitted,
                self._rejected_full,
                self._rejected_wait,
                self._wait_total,
                self._wait_max,
                self._render_mean,
            )

    def _enter(self) -> None:
        arrived = time.monotonic()
        with self._changed:
            if self._running < self.concurrency and not self._queued:
                self._running += 1
                self._admitted += 1
                return
            if self._queued >= self.queue_length:
                self._rejected_full += 1
                LANE_FULL.inc()
                raise self._full("the queue for large renders is full")
            self._queued += 1
            LANE_QUEUED.inc()
            try:
                end = arrived + self.max_wait
                while self._running >= self.concurrency:
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        self._rejected_wait += 1
                        LANE_WAIT_EXPIRED.inc()
                        self._record_wait(time.monotonic() - arrived)
                        raise self._full(f"no slot for a large render within {self.max_wait:g} s")
                    self._changed.wait(remaining)
            finally:
                self._queued -= 1
                LANE_QUEUED.dec()
            self._running += 1
            self._admitted += 1
            self._record_wait(time.monotonic() - arrived)

    def _record_wait(self, waited: float) -> None:
        LANE_WAIT.observe(waited)
        self._wait_total += waited
        self._wait_max = max(self._wait_max, waited)

    def _full(self, reason: str) -> LaneFull:
        """Come back when the renders ahead should be done: the slots' mean time, at least a second."""
        ahead = (self._running + self._queued) / self.concurrency
        retry_after = max(1, math.ceil(self._render_mean * ahead))
        return LaneFull(f"server busy: {reason}; try again later", retry_after=retry_after)
