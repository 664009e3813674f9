"""One contract for every cache backend (after Cantaloupe's AbstractCacheTest)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from iiif_server.cache import Cache, cache_key
from iiif_server.cache.disk import DiskCache
from iiif_server.cache.memory import MemoryCache
from iiif_server.cache.redis import RedisCache
from iiif_server.cache.tiered import TieredCache

MB = 1024 * 1024
Factory = Callable[[], Cache]


@pytest.fixture(params=["memory", "disk", "redis", "memory+disk", "memory+redis"])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> Cache:
    kind: str = request.param
    backends: list[Cache] = []
    for part in kind.split("+"):
        if part == "memory":
            backends.append(MemoryCache(8 * MB))
        elif part == "disk":
            backends.append(DiskCache(tmp_path / "cache", 64 * MB))
        else:
            url = request.getfixturevalue("redis_url")
            backends.append(RedisCache(url, ttl=60, prefix=request.getfixturevalue("prefix")))
    if len(backends) == 2:
        return TieredCache(backends[0], backends[1])  # type: ignore[arg-type]
    return backends[0]


A1, A2 = cache_key("a.tif", "d:1"), cache_key("a.tif", "d:2")
B1 = cache_key("hiện vật/b c.tif", "d:1")


def test_miss_then_hit(cache: Cache) -> None:
    assert cache.get(A1) is None
    cache.put(A1, b"\x00jpeg\xff" * 100)
    assert cache.get(A1) == b"\x00jpeg\xff" * 100


def test_overwrite(cache: Cache) -> None:
    cache.put(A1, b"one")
    cache.put(A1, b"two")
    assert cache.get(A1) == b"two"


def test_purge_one_identifier_keeps_the_others(cache: Cache) -> None:
    for key in (A1, A2, B1):
        cache.put(key, key.encode())
    assert cache.purge("a.tif") >= 2
    assert cache.get(A1) is None and cache.get(A2) is None
    assert cache.get(B1) == B1.encode()


def test_purge_everything(cache: Cache) -> None:
    for key in (A1, B1):
        cache.put(key, b"x")
    cache.purge()
    assert cache.get(A1) is None and cache.get(B1) is None


def test_keys_of_different_identifiers_never_collide(cache: Cache) -> None:
    cache.put(cache_key("a", "d:1"), b"a")
    cache.put(cache_key("b", "d:1"), b"b")
    assert cache.get(cache_key("a", "d:1")) == b"a"
    assert cache.get(cache_key("b", "d:1")) == b"b"
