"""Deadlines, disconnects and single flight against a real ``iiif-server serve`` (issue 11): the figures
in docs/operations.md, "Deadlines, disconnects and single flight".

    python bench/stopping.py IMAGE_ROOT gif|four|leave       (IMAGE_ROOT holds photo.tif and big.tif)

``photo.tif``: ``bench/synth_images.py``'s photo-like pyramid at 6000×4500; ``big.tif``: the tests'
4000×3000 JPEG pyramid (``tests.conftest.make_pattern`` / ``save_pyramid``). CPU is read from /proc
for the server's whole process tree. To measure another tree (before a change), put it first on
``PYTHONPATH``: the server inherits it. Redis on 127.0.0.1:6379 is needed for ``four``.

- gif: the large GIF with ``render_timeout`` 30 (memory budget off, so it is rendered at all);
- four: one render alone, then four identical ones at once, two workers sharing Redis;
- leave: eight clients leave 0.5 s into eight different slow renders, then the same eight complete.
"""

from __future__ import annotations

import json
import socket
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the client side: this checkout's helpers
from iiif_server.check import free_port, running_server
from tests.test_stopping import cpu_until_idle, get, server_cpu

UNBUDGETED = {"IIIF_SERVER_IMAGES_MAX_AREA": "0", "IIIF_SERVER_IMAGES_MAX_REQUEST_MB": "0"}


def serve(root: str, env: dict[str, str], workers: int) -> tuple[int, AbstractContextManager[str]]:
    port = free_port()
    return port, running_server(["serve", "--images", root, "--workers", str(workers)], port, env, start_timeout=120)


def gif(root: str) -> dict[str, object]:
    port, server = serve(root, {**UNBUDGETED, "IIIF_SERVER_SERVER_RENDER_TIMEOUT": "30"}, 1)
    with server as base:
        cpu = server_cpu(port)
        status, _, _, took = get(base + "/iiif/3/photo.tif/full/^10000,10000/0/default.gif")
        return {"status": status, "seconds": round(took, 1), "cpu": round(server_cpu(port) - cpu, 1)}


def four(root: str) -> dict[str, object]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    env = {
        **UNBUDGETED,
        "IIIF_SERVER_CACHE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "IIIF_SERVER_CACHE_REDIS_PREFIX": prefix,
        "IIIF_SERVER_SERVER_RENDER_TIMEOUT": "120",
    }
    port, server = serve(root, env, 2)
    try:
        with server as base:
            cpu = server_cpu(port)
            get(base + "/iiif/3/big.tif/full/^10000,7500/0/color.webp")  # the same work, another key
            one = server_cpu(port) - cpu
            cpu, started = server_cpu(port), time.monotonic()
            with ThreadPoolExecutor(4) as pool:
                answers = list(
                    pool.map(lambda _: get(base + "/iiif/3/big.tif/full/^10000,7500/0/default.webp"), range(4))
                )
            return {
                "one_cpu": round(one, 1),
                "four_cpu": round(server_cpu(port) - cpu, 1),
                "four_seconds": round(time.monotonic() - started, 1),
                "statuses": [answer[0] for answer in answers],
            }
    finally:
        with redis.Redis.from_url("redis://127.0.0.1:6379/0") as client:
            for key in client.scan_iter(match=prefix + "*"):
                client.delete(key)


def leave(root: str) -> dict[str, object]:
    env = {**UNBUDGETED, "IIIF_SERVER_SERVER_RENDER_TIMEOUT": "120", "IIIF_SERVER_LANES_HEAVY_PIXELS": "0"}
    port, server = serve(root, {**env, "IIIF_SERVER_CACHE_MEMORY_MB": "0"}, 2)
    with server as base:
        paths = [f"/iiif/3/big.tif/full/^{10000 - n},/0/default.jpg" for n in range(8)]

        def leave_one(path: str) -> None:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
                time.sleep(0.5)

        cpu = server_cpu(port)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(leave_one, paths))
        left = cpu_until_idle(port, cpu, limit=300)
        cpu = server_cpu(port)
        with ThreadPoolExecutor(8) as pool:  # the same work completed, under other keys
            list(pool.map(lambda path: get(base + path.replace("default", "color")), paths))
        return {"cpu_8_left": round(left, 1), "cpu_8_completed": round(server_cpu(port) - cpu, 1)}


if __name__ == "__main__":
    root, which = sys.argv[1], sys.argv[2]
    print(which, json.dumps({"gif": gif, "four": four, "leave": leave}[which](root)))
