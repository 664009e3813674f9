"""Redis killed and restarted under load, over real HTTP against a real gunicorn (the default worker).

Redis is optional at run time: while it is gone every request is still answered, rendered again
(the same bytes), and /health/ready says why the node is not ready; once it is back, renders are
cached there again, without a restart.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

from iiif_server.check import free_port, running_server

from .conftest import RedisProcess

URLS = [f"/iiif/3/pattern.tif/full/{width},/0/default.png" for width in range(101, 109)]  # rendered, not stored


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _cached(url: str) -> int:
    """Rendered derivatives held in Redis (keys ``{prefix}{group}:d:{etag}``; not locks or epochs)."""
    with redis.Redis.from_url(url) as client:
        return sum(1 for _ in client.scan_iter(match="*:d:*"))


class Load:
    """Clients asking for ``URLS`` round and round; every answer's status and bytes are kept."""

    def __init__(self, base: str, clients: int = 4) -> None:
        self.base = base
        self.answers: list[tuple[str, int, bytes]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(clients)]

    def _run(self, offset: int) -> None:
        n = offset
        while not self._stop.is_set():
            path = URLS[n % len(URLS)]
            status, body = _get(self.base + path)
            self.answers.append((path, status, body))
            n += 1

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


@pytest.mark.slow
def test_redis_killed_and_restarted_mid_load(image_root: Path, private_redis: RedisProcess) -> None:
    env = {
        "IIIF_SERVER_CACHE_REDIS_URL": private_redis.url,
        "IIIF_SERVER_CACHE_REDIS_TIMEOUT": "0.2",
        "IIIF_SERVER_CACHE_MEMORY_MB": "0",  # no memory tier: every answer is Redis's or a render
    }
    args = ["serve", "--images", str(image_root), "--workers", "2"]
    with running_server(args, free_port(), env) as base:
        expected = {path: _get(base + path)[1] for path in URLS}
        assert _cached(private_redis.url) == len(URLS)
        with Load(base) as load:
            time.sleep(1.5)
            private_redis.stop()
            outage_started = len(load.answers)
            time.sleep(3)
            status, body = _get(base + "/health/ready")
            assert status == 503 and json.loads(body)["checks"]["redis"] == "unreachable"
            outage_answers = len(load.answers) - outage_started
            private_redis.start()  # same port, empty
            time.sleep(3)  # past the 2 s back-off
        assert outage_answers > 10  # served through the outage, not stalled on connect timeouts
        assert [(path, status) for path, status, _ in load.answers if status != 200] == []
        assert all(body == expected[path] for path, _, body in load.answers)  # rendered again: same bytes
        for path in URLS:
            _get(base + path)
        assert _cached(private_redis.url) == len(URLS)  # caching again, without a restart
        assert _get(base + "/health/ready")[0] == 200
