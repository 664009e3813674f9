"""Stampede safety: one render for many identical concurrent requests, in a worker and across hosts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from iiif_server.cache.flight import SingleFlight
from iiif_server.cache.memory import MemoryCache
from iiif_server.cache.redis import RedisCache
from iiif_server.cache.tiered import TieredCache
from iiif_server.errors import ClientGone, RenderTimeout


class Renderer:
    def __init__(self, delay: float = 0.2, fail: bool = False) -> None:
        self.calls = 0
        self.delay = delay
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, abandoned: object = None) -> bytes:
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


def test_waiters_wait_for_a_live_leader_however_slow() -> None:
    """Before, waiters rendered by themselves after ``wait`` (10 s): the slowest renders were done twice or more."""
    flight = SingleFlight(MemoryCache(1 << 20), wait=30.0)
    render = Renderer(delay=1.0)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: flight.run("g:k", render), range(4)))
    assert results == [b"tile"] * 4 and render.calls == 1


def test_a_wait_is_bounded_by_the_render_limit() -> None:
    flight = SingleFlight(MemoryCache(1 << 20), wait=0.2)
    slow = Renderer(delay=1.0)
    leader = threading.Thread(target=flight.run, args=("g:k", slow))
    leader.start()
    time.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(RenderTimeout, match=r"waited 0\.2 s"):
        flight.run("g:k", Renderer(delay=0))
    assert time.monotonic() - started < 0.6
    leader.join()


class Abandonable:
    """A render that stops (``ClientGone``) as soon as ``abandoned()``, as libvips' eval callback does."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0
        self.stopped = 0

    def __call__(self, abandoned: Callable[[], bool]) -> bytes:
        self.calls += 1
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            if abandoned():
                self.stopped += 1
                raise ClientGone("gone")
            time.sleep(0.01)
        return b"tile"


def test_a_render_goes_on_for_its_waiters_when_the_leaders_client_leaves() -> None:
    flight = SingleFlight(MemoryCache(1 << 20))
    render, gone = Abandonable(0.5), threading.Event()
    with ThreadPoolExecutor(2) as pool:
        leader = pool.submit(flight.run, "g:k", render, gone.is_set)
        time.sleep(0.05)
        waiter = pool.submit(flight.run, "g:k", render, threading.Event().is_set)
        time.sleep(0.1)
        gone.set()
        assert waiter.result() == b"tile" and leader.result() == b"tile"
    assert (render.calls, render.stopped) == (1, 0)


def test_a_render_stops_when_every_client_has_left_and_the_next_caller_renders_again() -> None:
    flight = SingleFlight(MemoryCache(1 << 20))
    render, first, second = Abandonable(5.0), threading.Event(), threading.Event()
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        leader = pool.submit(flight.run, "g:k", render, first.is_set)
        time.sleep(0.05)
        waiter = pool.submit(flight.run, "g:k", render, second.is_set)
        first.set()
        second.set()
        with pytest.raises(ClientGone):
            leader.result()
        with pytest.raises(ClientGone):
            waiter.result()
    assert time.monotonic() - started < 1.0 and (render.calls, render.stopped) == (1, 1)
    render.seconds = 0
    assert flight.run("g:k", render) == b"tile" and render.calls == 2


def test_a_waiter_takes_over_when_the_render_it_waited_for_was_abandoned_under_it() -> None:
    """The leader's render saw nobody interested (the waiter joined a moment too late): it must not fail the waiter."""
    flight = SingleFlight(MemoryCache(1 << 20))
    calls: list[str] = []
    joined = threading.Event()

    def produce(abandoned: Callable[[], bool]) -> bytes:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            joined.wait(2)
            time.sleep(0.05)
            raise ClientGone("stopped before the waiter counted")
        return b"tile"

    with ThreadPoolExecutor(2, thread_name_prefix="caller") as pool:
        leader = pool.submit(flight.run, "g:k", produce)
        time.sleep(0.05)
        waiter = pool.submit(flight.run, "g:k", produce)
        joined.set()
        assert waiter.result() == b"tile"
        with pytest.raises(ClientGone):
            leader.result()
    assert len(calls) == 2


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
def test_waiters_on_other_hosts_wait_while_the_holder_renews_its_lock(redis_url: str, prefix: str) -> None:
    """The render outlives its lock's TTL (2 s) many times over: renewed, nobody else renders it."""
    hosts = [_host(redis_url, prefix, wait=30.0)[0] for _ in range(3)]
    renders = [Renderer(delay=3.0) for _ in hosts]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda i: hosts[i].run("g:k", renders[i]), range(3)))
    assert results == [b"tile"] * 3 and sum(r.calls for r in renders) == 1


def test_a_waiter_takes_over_at_once_when_the_holder_gives_up(redis_url: str, prefix: str) -> None:
    """The holder's client left (nobody else in its process wanted it): the lock is released, not left to expire."""
    (holder, _), (other, _) = _host(redis_url, prefix, wait=30.0), _host(redis_url, prefix, wait=30.0)
    render, gone = Abandonable(5.0), threading.Event()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(holder.run, "g:k", render, gone.is_set)
        time.sleep(0.2)
        second = pool.submit(other.run, "g:k", Renderer(delay=0))
        time.sleep(0.2)
        started = time.monotonic()
        gone.set()
        assert second.result() == b"tile"
        assert time.monotonic() - started < 1.0
        with pytest.raises(ClientGone):
            first.result()


def test_a_render_that_ran_out_of_time_is_not_retried_by_waiters_elsewhere(redis_url: str, prefix: str) -> None:
    (holder, _), (other, _) = _host(redis_url, prefix, wait=1.0), _host(redis_url, prefix, wait=1.0)

    def too_slow(abandoned: object) -> bytes:
        time.sleep(0.3)
        raise RenderTimeout("rendering took longer than 0.3 s", retry_after=1)

    retry = Renderer(delay=0)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(holder.run, "g:k", too_slow)
        time.sleep(0.1)
        second = pool.submit(other.run, "g:k", retry)
        with pytest.raises(RenderTimeout, match="took longer"):
            first.result()
        with pytest.raises(RenderTimeout, match="waited 1 s"):
            second.result()
    assert retry.calls == 0


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
