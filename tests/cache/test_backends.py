"""What each backend promises beyond the contract: bounds, atomicity, TTL, outages, maxmemory."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import time
import zlib
from pathlib import Path

import pytest
import redis

from iiif_server.cache import cache_key
from iiif_server.cache.disk import DiskCache
from iiif_server.cache.memory import MemoryCache
from iiif_server.cache.redis import UNAVAILABLE, RedisCache
from iiif_server.cache.tiered import TieredCache
from tests.cache.conftest import RedisProcess, free_port

KB = 1024


def test_memory_is_bounded_in_bytes_and_evicts_least_recently_used() -> None:
    cache = MemoryCache(100 * KB)
    for i in range(10):
        cache.put(f"g:{i}", bytes(10 * KB))
    cache.get("g:0")  # recently used: survives
    cache.put("g:new", bytes(10 * KB))
    assert cache.size <= 100 * KB
    assert cache.get("g:0") is not None
    assert cache.get("g:1") is None  # the oldest untouched one went
    cache.put("g:huge", bytes(50 * KB))  # over an eighth of the budget: not cached at all
    assert cache.get("g:huge") is None and cache.get("g:0") is not None


def test_disk_writes_are_atomic_and_leave_no_temporaries(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, 10 * 1024 * KB)
    cache.put(cache_key("a", "d:1"), b"x" * 1000)
    files = [name for _, _, names in os.walk(tmp_path) for name in names]
    assert len(files) == 1 and not files[0].startswith(".")


def test_disk_eviction_removes_least_recently_used_first(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, 100 * KB, evict_in_background=False)
    keys = [cache_key("img", f"d:{i}") for i in range(12)]
    for age, key in enumerate(keys):
        cache.put(key, bytes(10 * KB))
        stamp = time.time() - 1000 + age  # older first
        os.utime(cache._path(key), (stamp, stamp))
    assert cache.evict() >= 3
    assert sum(cache.get(key) is not None for key in keys) <= 9
    assert cache.get(keys[0]) is None and cache.get(keys[-1]) is not None


def test_disk_eviction_runs_by_itself_when_over_budget(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path, 200 * KB)
    for i in range(60):
        cache.put(cache_key("img", f"d:{i}"), bytes(20 * KB))
    deadline = time.time() + 10
    while time.time() < deadline:
        total = _usage(tmp_path)
        if total <= 200 * KB + 200 * KB // 10 + 20 * KB:
            break
        time.sleep(0.05)
    assert total <= 200 * KB + 200 * KB // 10 + 20 * KB


def _usage(root: Path) -> int:
    """Bytes in cache files; eviction may delete files while we count."""
    total = 0
    for folder, _, names in os.walk(root):
        for name in names:
            if not name.startswith("."):
                with contextlib.suppress(FileNotFoundError):
                    total += os.path.getsize(os.path.join(folder, name))
    return total


def _hammer(root: str, worker: int) -> int:
    """Write and read shared keys from another process; count torn reads."""
    cache = DiskCache(Path(root), 50 * 1024 * KB)
    torn = 0
    for round_ in range(200):
        key = cache_key("shared", f"d:{round_ % 5}")
        payload = os.urandom(20 * KB + worker * 100 + round_)
        cache.put(key, zlib.crc32(payload).to_bytes(4, "big") + payload)
        value = cache.get(key)
        if value is not None and zlib.crc32(value[4:]).to_bytes(4, "big") != value[:4]:
            torn += 1
    return torn


def test_disk_is_safe_with_many_processes(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        torn = pool.starmap(_hammer, [(str(tmp_path), worker) for worker in range(4)])
    assert torn == [0, 0, 0, 0]


def test_writes_during_an_eviction_pass_get_a_pass_of_their_own(tmp_path: Path) -> None:
    """Writes that land while a (slow) pass runs start none themselves: the pass must look again."""
    cache = DiskCache(tmp_path, 200 * KB)
    evict, passes = cache.evict, []

    def slow_evict() -> int:
        passes.append(1)
        if len(passes) == 1:
            time.sleep(0.5)  # the first pass runs while the rest are written
        return evict()

    cache.evict = slow_evict  # type: ignore[method-assign]
    for i in range(11):  # the first write (a tenth of the budget) starts the first pass
        cache.put(cache_key("img", f"d:{i}"), bytes(20 * KB))
    for i in range(11, 40):  # all during the first pass, which saw none of them
        cache.put(cache_key("img", f"d:{i}"), bytes(20 * KB))
    deadline = time.time() + 10
    while time.time() < deadline and (_usage(tmp_path) > 200 * KB or cache._evicting):
        time.sleep(0.05)
    assert len(passes) >= 2 and _usage(tmp_path) <= 200 * KB


def test_redis_entries_expire(redis_url: str, prefix: str) -> None:
    cache = RedisCache(redis_url, ttl=120, prefix=prefix)
    cache.put("g:k", b"v")
    with redis.Redis.from_url(redis_url) as client:
        ttl = client.ttl(prefix + "g:k")
    assert 100 < ttl <= 120


def test_redis_outage_is_a_miss_logged_once_and_recovers(
    private_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    cache = RedisCache(private_redis.url, ttl=60, prefix="t:", timeout=0.2, retry_after=0.2)
    cache.put("g:k", b"v")
    assert cache.get("g:k") == b"v"
    private_redis.stop()
    with caplog.at_level(logging.WARNING, logger="iiif_server.cache.redis"):
        started = time.monotonic()
        for _ in range(50):
            assert cache.get("g:k") is None
            cache.put("g:k", b"w")
        assert time.monotonic() - started < 5  # no connect timeout per request while down
        assert cache.acquire("g:k", 1.0) is UNAVAILABLE
        assert cache.purge() == 0
        unavailable = [r for r in caplog.records if "unavailable" in r.getMessage()]
        assert len(unavailable) == 1
        private_redis.start()  # same port, empty
        time.sleep(0.3)
        cache.put("g:k", b"back")
        assert cache.get("g:k") == b"back"
        assert any("reachable again" in r.getMessage() for r in caplog.records)


def test_redis_with_maxmemory_allkeys_lru_keeps_serving() -> None:
    server = RedisProcess("--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
    server.start()
    try:
        cache = RedisCache(server.url, ttl=60, prefix="lru:")
        values = {cache_key("img", f"d:{i}"): os.urandom(50 * KB) for i in range(100)}  # 5 MB into 2 MB
        for key, value in values.items():
            cache.put(key, value)
        results = [cache.get(key) for key in values]
        assert all(result is None or result == values[key] for key, result in zip(values, results, strict=True))
        assert any(result is None for result in results) and any(result is not None for result in results)
        assert cache.available
        cache.purge("img")
        assert all(cache.get(key) is None for key in values)
    finally:
        server.stop()


def test_unreachable_redis_from_the_start(caplog: pytest.LogCaptureFixture) -> None:
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    tiered = TieredCache(MemoryCache(1024 * KB), cache)
    tiered.put("g:k", b"v")
    assert tiered.get("g:k") == b"v"  # the memory tier still works


def test_purge_reaches_other_workers_memory_through_the_epoch(tmp_path: Path) -> None:
    """Two workers share a disk tier; a purge in one empties the other's memory within the interval."""
    one = TieredCache(MemoryCache(1024 * KB), DiskCache(tmp_path, 1024 * KB), epoch_interval=0.05)
    two = TieredCache(MemoryCache(1024 * KB), DiskCache(tmp_path, 1024 * KB), epoch_interval=0.05)
    key = cache_key("a.tif", "d:1")
    two.put(key, b"old")
    one.purge("a.tif")
    time.sleep(0.1)
    assert two.get(key) is None
