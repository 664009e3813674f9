"""Stampede safety: one render for many identical concurrent requests, in a worker and across hosts."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from iiif_server.cache.flight import SingleFlight
from iiif_server.cache.memory import MemoryCache
from iiif_server.cache.redis import RedisCache
from iiif_server.cache.tiered import TieredCache


class Renderer:
    def __init__(self, delay: float = 0.2, fail: bool = False) -> None:
        self.calls = 0
        self.delay = delay
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self) -> bytes:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        if self.fail:
            raise ValueError("broken source")
        return b"tile"


def test_concurrent_requests_in_one_worker_render_once() -> None:
    flight = SingleFlight(MemoryCache(1 << 20))
    render = Renderer()
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: flight.run("g:k", render), range(16)))
    assert results == [b"tile"] * 16
    assert render.calls == 1


def test_errors_reach_every_waiter() -> None:
    flight = SingleFlight(MemoryCache(1 << 20))
    render = Renderer(fail=True)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(flight.run, "g:k", render) for _ in range(8)]
        errors = [f.exception() for f in futures]
    assert all(isinstance(e, ValueError) for e in errors)
    assert render.calls == 1


def test_a_stuck_leader_does_not_block_waiters_forever() -> None:
    flight = SingleFlight(MemoryCache(1 << 20), wait=0.1)
    slow, quick = Renderer(delay=1.0), Renderer(delay=0)
    leader = threading.Thread(target=flight.run, args=("g:k", slow))
    leader.start()
    time.sleep(0.05)
    started = time.monotonic()
    assert flight.run("g:k", quick) == b"tile"
    assert time.monotonic() - started < 0.5 and quick.calls == 1
    leader.join()


def _host(redis_url: str, prefix: str, wait: float = 5.0) -> tuple[SingleFlight, RedisCache]:
    """One "host": its own memory tier, the shared Redis tier and locks."""
    shared = RedisCache(redis_url, ttl=60, prefix=prefix)
    return SingleFlight(TieredCache(MemoryCache(1 << 20), shared), shared, wait=wait, lock_ttl=2.0), shared


def test_hosts_render_once_through_the_redis_lock(redis_url: str, prefix: str) -> None:
    hosts = [_host(redis_url, prefix)[0] for _ in range(4)]
    renders = [Renderer(delay=0.3) for _ in hosts]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: hosts[i % 4].run("g:k", renders[i % 4]), range(8)))
    assert results == [b"tile"] * 8
    assert sum(r.calls for r in renders) == 1


@pytest.mark.slow
def test_a_crashed_lock_holder_only_delays_others_until_the_lock_expires(redis_url: str, prefix: str) -> None:
    flight, shared = _host(redis_url, prefix, wait=5.0)
    assert isinstance(shared.acquire("g:k", 0.5), str)  # "a worker" took the lock, then died
    render = Renderer(delay=0)
    started = time.monotonic()
    assert flight.run("g:k", render) == b"tile"
    assert render.calls == 1
    assert time.monotonic() - started < 6


@pytest.mark.parametrize("outage", [True])
def test_without_redis_rendering_goes_on(outage: bool) -> None:
    shared = RedisCache("redis://127.0.0.1:1/0", timeout=0.1)
    flight = SingleFlight(TieredCache(MemoryCache(1 << 20), shared), shared)
    render = Renderer(delay=0)
    assert flight.run("g:k", render) == b"tile" and render.calls == 1
