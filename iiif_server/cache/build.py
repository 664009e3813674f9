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


@dataclass(frozen=True)
class Caches:
    tiered: TieredCache
    flight: SingleFlight
    redis: RedisCache | None


def build_caches(settings: CacheSettings, memory: bool = True) -> Caches:
    """Memory tier (unless ``memory`` is False, e.g. for a CLI purge), then Redis or disk."""
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
    return Caches(tiered, SingleFlight(tiered, redis_tier, settings.wait, settings.lock_ttl), redis_tier)
