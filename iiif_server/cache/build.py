"""Build the cache tiers a Settings asks for; shared by the app and ``iiif-server cache``."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import CacheSettings
from .disk import DiskCache
from .flight import SingleFlight
from .memory import MemoryCache
from .redis import RedisCache
from .tiered import SharedTier, TieredCache

MB = 1024 * 1024
FLIGHT_GRACE = 2.0  # seconds a waiter allows beyond the render's own limit: storing, handing over


@dataclass(frozen=True)
class Caches:
    tiered: TieredCache
    flight: SingleFlight
    redis: RedisCache | None


def build_caches(settings: CacheSettings, memory: bool = True, render_limit: float = 30.0) -> Caches:
    """Memory tier (unless ``memory`` is False, e.g. for a CLI purge), then Redis or disk.

    ``render_limit``: seconds a render may take, slot wait included; waiting for an identical
    render in progress is bounded by it (plus a little) unless ``settings.wait`` says otherwise.
    """
    redis_tier = (
        RedisCache(settings.redis_url, settings.redis_ttl, settings.redis_prefix, settings.redis_timeout)
        if settings.redis_url
        else None
    )
    shared: SharedTier | None = redis_tier
    if shared is None and settings.disk_max_mb:
        shared = DiskCache(settings.disk_dir, settings.disk_max_mb * MB)
    memory_tier = MemoryCache(settings.memory_mb * MB) if memory and settings.memory_mb else None
    tiered = TieredCache(memory_tier, shared)
    wait = settings.wait or render_limit + FLIGHT_GRACE
    return Caches(tiered, SingleFlight(tiered, redis_tier, wait, settings.lock_ttl), redis_tier)
