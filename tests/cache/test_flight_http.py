"""Single flight over real HTTP: identical slow requests spread over two gunicorn workers sharing Redis
are rendered once, however long the render takes (waiters no longer give up after a fixed time)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from iiif_server.check import free_port, running_server
from tests.test_stopping import get, metric, server_cpu

#: ~5-10 CPU seconds: longer, on this machine, than the 10 s after which waiters used to render by themselves
SLOW = "/iiif/3/big.tif/full/^10000,7500/0/default.webp"
SLOW_TWIN = "/iiif/3/big.tif/full/^10000,7500/0/color.webp"  # the same work under another cache key


@pytest.mark.slow
def test_four_identical_slow_requests_on_two_workers_render_once(
    image_root: Path, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    env = {
        "IIIF_SERVER_CACHE_REDIS_URL": redis_url,
        "IIIF_SERVER_CACHE_REDIS_PREFIX": prefix,
        "IIIF_SERVER_SERVER_RENDER_TIMEOUT": "120",
        "IIIF_SERVER_IMAGES_MAX_AREA": "0",
        "IIIF_SERVER_IMAGES_MAX_REQUEST_MB": "0",  # runaways on purpose: past the memory budget too
    }
    port = free_port()
    with running_server(["serve", "--images", str(image_root), "--workers", "2"], port, env) as base:
        cpu = server_cpu(port)
        assert get(base + SLOW_TWIN)[0] == 200
        one = server_cpu(port) - cpu
        assert metric(base, "iiif_renders_total") == 1
        cpu = server_cpu(port)
        with ThreadPoolExecutor(4) as pool:  # new connections: gunicorn spreads them over both workers
            answers = list(pool.map(lambda _: get(base + SLOW), range(4)))
        four = server_cpu(port) - cpu
        assert [status for status, *_ in answers] == [200] * 4
        assert len({body for _, _, body, _ in answers}) == 1
        assert metric(base, "iiif_renders_total") == 2  # the twin, and this one once
        assert four < 1.5 * one, (four, one)
