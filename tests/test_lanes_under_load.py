"""Admission lanes over real HTTP: heavy renders must not starve tiles and info.json.

A real gunicorn server (2 workers × 4 threads) serves a 6000×4000 pyramidal TIFF. While 32
clients ask for distinct, uncached near-full-size renders (48 megapixels decoded and produced
each), one client keeps fetching cheap answers (info.json, stored tiles passed through, a cached
small render) and its latencies are compared with the same loop on the idle server. Without
lanes the cheap requests queued FIFO behind the renders in each worker for seconds.
"""

from __future__ import annotations

import http.client
import itertools
import statistics
import threading
import time
from collections import Counter
from email.message import Message
from pathlib import Path

import pytest
import pyvips

from iiif_server.check import free_port, running_server

WIDTH, HEIGHT = 6000, 4000
HEAVY_CLIENTS = 32
LOAD_SECONDS = 12.0
CHEAP = [
    "/iiif/3/big.tif/info.json",
    "/iiif/3/big.tif/0,0,256,256/256,/0/default.jpg",  # stored tiles: passed through
    "/iiif/3/big.tif/2560,1536,256,256/256,/0/default.jpg",
    "/iiif/3/big.tif/full/200,/0/default.jpg",  # a small render, cached after the first
]


def _big_tiff(path: Path) -> None:
    """Noise, so that decoding and encoding cost what a real scan costs."""
    noise = pyvips.Image.gaussnoise(WIDTH, HEIGHT, mean=128, sigma=40).cast("uchar")
    image = noise.bandjoin([noise.rot180(), noise.fliphor()]).copy(interpretation="srgb")
    image.tiffsave(str(path), tile=True, pyramid=True, compression="jpeg", Q=85, tile_width=256, tile_height=256)


def _get(connection: http.client.HTTPConnection, path: str) -> tuple[int, Message, bytes]:
    """Status, headers (looked up case-insensitively, as HTTP names are) and body."""
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.headers, response.read()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _cheap_loop(port: int, until: float, count: int = 0) -> tuple[list[float], Counter[int]]:
    """Latencies (s) of the cheap requests in turn, for ``count`` requests or until ``until``."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for path in itertools.cycle(CHEAP):
            if (count and len(latencies) >= count) or (not count and time.monotonic() > until):
                break
            started = time.perf_counter()
            status, _, _ = _get(connection, path)
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
    finally:
        connection.close()
    return latencies, statuses


@pytest.mark.slow
def test_heavy_renders_do_not_starve_tiles_and_info(tmp_path: Path) -> None:
    root = tmp_path / "images"
    root.mkdir()
    _big_tiff(root / "big.tif")
    port = free_port()
    env = {"IIIF_SERVER_CACHE_DISK_DIR": str(tmp_path / "cache")}
    args = ["serve", "--images", str(root), "--workers", "2"]
    with running_server(args, port, env, log=tmp_path / "server.log"):
        _cheap_loop(port, 0, count=80)  # warm: layouts, readers, the small render cached in each worker
        idle, idle_statuses = _cheap_loop(port, 0, count=400)
        assert idle_statuses == Counter({200: 400})

        widths = itertools.count(WIDTH - 1, -1)  # distinct sizes: no cache hit, no coalescing
        heavy: Counter[int] = Counter()
        problems: list[str] = []
        lock = threading.Lock()
        until = time.monotonic() + LOAD_SECONDS

        def hammer() -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                while time.monotonic() < until:
                    with lock:
                        width = next(widths)
                    status, headers, body = _get(connection, f"/iiif/3/big.tif/full/{width},/0/default.jpg")
                    with lock:
                        heavy[status] += 1
                        if status == 200 and (headers["Content-Type"] != "image/jpeg" or body[:2] != b"\xff\xd8"):
                            problems.append(f"{width}: 200 without a JPEG")
                        elif status == 503 and not headers.get("Retry-After", "").isdigit():
                            problems.append(f"{width}: 503 without Retry-After")
                        elif status not in (200, 503):
                            problems.append(f"{width}: {status} {body[:100]!r}")
                    if status == 503:
                        time.sleep(0.05)  # a client that ignores Retry-After, but not a busy loop
            finally:
                connection.close()

        clients = [threading.Thread(target=hammer) for _ in range(HEAVY_CLIENTS)]
        for client in clients:
            client.start()
        time.sleep(1.0)  # let the renders take the threads first
        loaded, loaded_statuses = _cheap_loop(port, until)
        for client in clients:
            client.join(timeout=180)

    idle_p50, idle_p99 = statistics.median(idle), _percentile(idle, 0.99)
    loaded_p50, loaded_p99 = statistics.median(loaded), _percentile(loaded, 0.99)
    figures = (
        f"cheap idle p50 {idle_p50 * 1e3:.1f} ms p99 {idle_p99 * 1e3:.1f} ms; "
        f"loaded p50 {loaded_p50 * 1e3:.1f} ms p99 {loaded_p99 * 1e3:.1f} ms ({len(loaded)} requests); "
        f"heavy {dict(heavy)}"
    )
    print(figures)
    assert not problems, problems[:5]
    assert set(loaded_statuses) == {200}, loaded_statuses
    assert heavy[200] >= 1 and heavy[503] >= 1, figures  # renders still finish; the rest is told to come back
    assert loaded_p99 <= max(20 * idle_p99, 0.1) and loaded_p99 <= 2.0, figures
