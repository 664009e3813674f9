"""CPU time per random tile in one process, nothing else competing: a steady before/after measure.

::

    .venv/bin/python bench/inprocess_tiles.py [SEED]        # run it with each install's Python

The app (``create_app``, defaults, memory and a temporary disk cache) answers 3 800 random tile
requests of bench/images' 20 000 x 15 000 image across 7 zoom levels through Flask's test client,
after 200 to warm up; the figure is ``time.process_time()`` per request. Whatever the test client
costs is the same for both installs, so only the difference between them means anything.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

IMAGES = Path(__file__).resolve().parent / "images"
WIDTH, HEIGHT, TILE = 20000, 15000, 256


def tile_urls(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    urls = []
    for _ in range(count):
        scale = 2 ** rng.randint(0, 6)
        side = TILE * scale
        x = rng.randrange((WIDTH + side - 1) // side) * side
        y = rng.randrange((HEIGHT + side - 1) // side) * side
        w, h = min(side, WIDTH - x), min(side, HEIGHT - y)
        urls.append(f"/iiif/3/photo-20000x15000.tif/{x},{y},{w},{h}/{(w + scale - 1) // scale},/0/default.jpg")
    return urls


def main() -> None:
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    work = tempfile.mkdtemp(prefix="iiif-inprocess-")
    os.chdir(work)
    os.environ.update(
        {
            "IIIF_SERVER_CONFIG": os.devnull,
            "IIIF_SERVER_IMAGES_ROOT": str(IMAGES),
            "IIIF_SERVER_CACHE_DISK_DIR": f"{work}/cache",
            "IIIF_SERVER_SERVER_ACCESS_LOG": "off",
        }
    )
    from iiif_server.app import create_app  # after the environment is set

    client = create_app().test_client()
    urls = tile_urls(seed, 4000)
    for url in urls[:200]:
        assert client.get(url).status_code == 200, url
    began = time.process_time()
    for url in urls[200:]:
        assert client.get(url).status_code == 200, url
    per_request = (time.process_time() - began) / (len(urls) - 200) * 1e6
    print(f"{sys.executable}: {per_request:.0f} µs CPU per random tile (seed {seed}, {len(urls) - 200} requests)")


if __name__ == "__main__":
    main()
