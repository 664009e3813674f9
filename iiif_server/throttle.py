"""Failures counted per client address, and addresses blocked after too many: a brake on guessing
the admin token (issue 11).

After ``max_failures`` failures within ``period`` seconds an address is blocked for ``period``
seconds; a success clears its count. An IPv6 address counts by its /64 (one host is usually
given a whole /64, so single addresses would be free for the taking). Memory is bounded: an LRU
of ``max_addresses`` addresses; evicting one forgets its count, so an attacker with thousands of
addresses loses nothing it did not have already. Per process: with W workers an address may fail
up to ``max_failures`` × W times per period. Knows no web framework; the caller says who asked.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Callable

from .lru import LRU


def client_key(address: str | None) -> str:
    """What failures are counted by: the address, or its /64 for IPv6 (IPv4-mapped ones as IPv4)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Throttle:
    def __init__(
        self,
        max_failures: int,
        period: float,
        max_addresses: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures  # 0: never blocks
        self.period = period
        self.clock = clock
        self._state: LRU[str, list[float]] = LRU(max_addresses)  # key -> [window start, failures, blocked until]
        self._lock = threading.Lock()

    def blocked_for(self, key: str) -> int:
        """Whole seconds (at least 1) until ``key`` may try again; 0 if it is not blocked."""
        with self._lock:
            state = self._state.get(key)
            left = state[2] - self.clock() if state is not None else 0.0
        return max(1, math.ceil(left)) if left > 0 else 0

    def failed(self, key: str) -> int:
        """Count a failure; returns how many ``key`` has in its current period (``max_failures``
        or more: it is blocked now)."""
        now = self.clock()
        with self._lock:
            state = self._state.get(key)
            if state is None or self._expired(state, now):  # count afresh
                state = [now, 0.0, 0.0]
                self._state.put(key, state)
            state[1] += 1
            if self.max_failures and state[1] >= self.max_failures and not state[2]:
                state[2] = now + self.period
            return int(state[1])

    def succeeded(self, key: str) -> None:
        self._state.pop(key)

    def _expired(self, state: list[float], now: float) -> bool:
        """Is its block over, or (not blocked) its counting period?"""
        return now >= state[2] if state[2] else now - state[0] >= self.period
