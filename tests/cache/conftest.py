"""Real Redis for the cache tests: the shared one on 127.0.0.1:6379 (else a private one for the
session), and throwaway servers on free ports for outages and maxmemory. Never skipped: no Redis is
a failure. Every redis-server started here is stopped here."""

from __future__ import annotations

import gc
import shutil
import socket
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator

import pytest
import redis

SHARED_URL = "redis://127.0.0.1:6379/0"


def _answers(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The shared Redis on 127.0.0.1:6379 (the test command starts one), else a private one on a free
    port that this session starts and stops: the suite never leaves a redis-server behind."""
    if _answers(SHARED_URL):
        yield SHARED_URL
        return
    if not shutil.which("redis-server"):
        pytest.fail(
            "no Redis answers on 127.0.0.1:6379 and redis-server is not installed (apt-get install redis-server)"
        )
    private = RedisProcess()
    private.start()
    try:
        yield private.url
    finally:
        private.stop()


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are removed afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}:"
    yield name
    with redis.Redis.from_url(redis_url) as client:
        for key in client.scan_iter(match=name + "*"):
            client.delete(key)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """A private redis-server we may stop and start again."""

    def __init__(self, *extra: str) -> None:
        self.port = free_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        assert server, "redis-server is needed for these tests (apt-get install redis-server)"
        self.process = subprocess.Popen(
            [server, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no", *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            if _answers(self.url):
                return
            time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    yield server
    server.stop()
    # Clients the test made (an app's cache tier, a lock) sit in reference cycles: collect them now,
    # not in whichever later test the garbage collector happens to run, where their sockets' warning
    # (the server they spoke to is gone) would fail that test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
