"""Redis tier: shared by every worker and host; TTL; tolerant of outages. The only redis importer.

Redis may go away at any time (restart, network, ``maxmemory`` evicting our keys):
every failure is a cache miss, never an error response. The first failure logs a
warning, later ones are silent until Redis answers again (logged once more), and
while it is down it is not asked again for ``retry_after`` seconds, so an outage
costs no connect timeout per request.

Nothing here relies on a key surviving: purges SCAN for keys instead of keeping
index sets that ``allkeys-lru`` could evict.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.exceptions import RedisError

from ..metrics import REDIS_ERRORS
from . import group_of

log = logging.getLogger(__name__)
T = TypeVar("T")

# Compare-and-delete: only the holder of a lock may release it.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
# Compare-and-extend: only the holder of a lock may renew it.
_EXTEND = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
)
_UNAVAILABLE = object()


class RedisCache:
    def __init__(
        self,
        url: str,
        ttl: int = 7 * 86400,
        prefix: str = "iiif:",
        timeout: float = 0.5,
        retry_after: float = 2.0,
    ) -> None:
        self.ttl = ttl
        self.prefix = prefix
        self.retry_after = retry_after
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
        )
        self._down_since: float | None = None
        self._lock = threading.Lock()

    # -- outage handling ---------------------------------------------------------------

    def _call(self, operation: Callable[[], T], default: T) -> T:
        with self._lock:
            if self._down_since is not None and time.monotonic() - self._down_since < self.retry_after:
                return default
        try:
            result = operation()
        except RedisError as err:
            REDIS_ERRORS.inc()
            with self._lock:
                first = self._down_since is None
                self._down_since = time.monotonic()
            if first:
                log.warning("Redis cache unavailable, serving uncached until it returns: %s", err)
            return default
        if self._down_since is not None:
            with self._lock:
                if self._down_since is not None:
                    self._down_since = None
                    log.warning("Redis cache reachable again")
        return result

    @property
    def available(self) -> bool:
        return self._down_since is None

    def ping(self) -> bool:
        """Whether Redis answers now (for readiness probes): asks even while an outage is assumed."""
        try:
            return bool(self.client.ping())
        except RedisError:
            return False

    # -- Cache ---------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        return self._call(lambda: self.client.get(self.prefix + key), None)  # type: ignore[return-value]

    def put(self, key: str, value: bytes) -> None:
        self._call(lambda: self.client.set(self.prefix + key, value, ex=self.ttl), None)

    def purge(self, identifier: str | None = None) -> int:
        pattern = self.prefix + (f"{group_of(identifier)}:*" if identifier is not None else "*")

        def scan_and_delete() -> int:
            count = 0
            batch: list[bytes] = []
            for key in self.client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    count += self._delete(batch)
                    batch = []
            return count + (self._delete(batch) if batch else 0)

        return self._call(scan_and_delete, 0)

    def _delete(self, keys: list[bytes]) -> int:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.unlink(key)
        return sum(int(n) for n in pipe.execute())

    # -- purge epochs ----------------------------------------------------------------------

    def epoch(self) -> str:
        value = self._call(lambda: self.client.get(self.prefix + "epoch"), None)
        return value.decode() if isinstance(value, bytes) else "0"

    def bump_epoch(self) -> None:
        self._call(lambda: self.client.incr(self.prefix + "epoch"), None)

    # -- short locks, so hosts render a derivative once -----------------------------------

    def acquire(self, key: str, ttl: float) -> str | object | None:
        """A token if we hold the lock, None if another holds it, ``UNAVAILABLE`` if Redis is down.

        The lock expires by itself after ``ttl`` seconds: a worker that dies holding it
        delays the others at most that long.
        """
        token = uuid.uuid4().hex
        result = self._call(
            lambda: self.client.set(self.prefix + "lock:" + key, token, nx=True, px=int(ttl * 1000)), _UNAVAILABLE
        )
        if result is _UNAVAILABLE:
            return UNAVAILABLE
        return token if result else None

    def extend(self, key: str, token: str, ttl: float) -> bool:
        """Renew a lock we hold for another ``ttl`` seconds; False if it is no longer ours."""
        lock, ms = self.prefix + "lock:" + key, int(ttl * 1000)
        return bool(self._call(lambda: self.client.eval(_EXTEND, 1, lock, token, ms), 0))

    def held(self, key: str) -> bool:
        """Whether anyone holds the lock on ``key`` (False too while Redis is down: nobody to wait for)."""
        return bool(self._call(lambda: self.client.exists(self.prefix + "lock:" + key), 0))

    def release(self, key: str, token: str) -> None:
        self._call(lambda: self.client.eval(_RELEASE, 1, self.prefix + "lock:" + key, token), None)


UNAVAILABLE = _UNAVAILABLE
