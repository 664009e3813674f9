"""What a request for a missing image costs, next to a hit, in a folder of many files (issue 11).

    .venv/bin/python bench/misses.py [--files 100000] [--seconds 10] [--clients 8] [--workers 2]

Makes a temporary image root holding ``big/`` (``--files`` zero-byte ``.tif`` files and one small
PNG), then prints:

- in-process: ``FileSource.locate`` of the PNG (a hit: resolved before) and of random missing
  names (each asked once), best of several rounds, per call;
- over HTTP (a real ``iiif-server serve`` on 127.0.0.1): single-request latency (best of 20) and
  requests/s of ``--clients`` keep-alive clients for ``--seconds`` each, on the PNG's info.json
  (hits) and on info.json of random missing ids (404s).

Uses only 127.0.0.1 and a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from iiif_server.check import free_port, running_server  # noqa: E402
from iiif_server.errors import NotFound  # noqa: E402
from iiif_server.image.sources import FileSource  # noqa: E402

PNG = BENCH.parent / "iiif_server" / "data" / "67352ccc-d1b0-11e1-89ae-279075081939.png"
EXTENSIONS = (".tif", ".tiff", ".ptif", ".jpg", ".jpeg", ".png", ".webp")


def make_root(where: Path, files: int) -> Path:
    big = where / "big"
    big.mkdir(parents=True)
    for number in range(files):
        (big / f"scan-{number:06d}.tif").touch()
    shutil.copy(PNG, big / "hit.png")
    time.sleep(1.1)  # a folder changed within the last second is also checked name by name (folders.py)
    return where


def best_per_call(call: Callable[[int], object], calls: int = 200, rounds: int = 7) -> float:
    """Seconds per call, the best round of ``rounds``."""
    best = float("inf")
    offset = 0
    for _ in range(rounds):
        start = time.perf_counter()
        for index in range(calls):
            call(offset + index)
        best = min(best, (time.perf_counter() - start) / calls)
        offset += calls
    return best


def in_process(root: Path) -> tuple[float, float]:
    source = FileSource(root, EXTENSIONS)
    source.locate("big/hit.png")

    def miss(index: int) -> None:
        with contextlib.suppress(NotFound):
            source.locate(f"big/missing-{index}")

    hit = best_per_call(lambda index: source.locate("big/hit.png"), calls=2000)
    return hit, best_per_call(miss, calls=20, rounds=5)


def single(base: str, path: Callable[[], str], times: int = 20) -> float:
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    best = float("inf")
    for _ in range(times):
        start = time.perf_counter()
        connection.request("GET", path())
        connection.getresponse().read()
        best = min(best, time.perf_counter() - start)
    connection.close()
    return best


def throughput(base: str, path: Callable[[], str], clients: int, seconds: float) -> tuple[float, set[int]]:
    """Requests/s of ``clients`` keep-alive connections asking ``path()`` for ``seconds``; the statuses seen."""
    host, port = base.removeprefix("http://").split(":")
    deadline = time.monotonic() + seconds
    counts = [0] * clients
    statuses: set[int] = set()

    def run(slot: int) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        while time.monotonic() < deadline:
            connection.request("GET", path())
            response = connection.getresponse()
            response.read()
            statuses.add(response.status)
            counts[slot] += 1
        connection.close()

    threads = [threading.Thread(target=run, args=(slot,)) for slot in range(clients)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - start), statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="iiif-misses-") as temporary:
        root = make_root(Path(temporary) / "root", args.files)
        hit, miss = in_process(root)
        print(f"in-process locate: hit {hit * 1e6:.1f} µs, miss {miss * 1e6:.1f} µs ({miss / hit:.1f}×)")
        hit_path = "/iiif/3/big%2Fhit.png/info.json"

        def miss_path() -> str:
            return f"/iiif/3/big%2Fmissing-{uuid.uuid4().hex}/info.json"

        server = ["serve", "--images", str(root), "--workers", str(args.workers)]
        with running_server(server, free_port(), {"IIIF_SERVER_SERVER_ACCESS_LOG": "off"}) as base:
            for label, path in (("hit", lambda: hit_path), ("miss", miss_path)):
                print(f"HTTP single {label}: {single(base, path) * 1e3:.2f} ms (best of 20)")
            for label, path in (("hits", lambda: hit_path), ("misses", miss_path)):
                rate, statuses = throughput(base, path, args.clients, args.seconds)
                print(f"HTTP {args.clients} clients, {label}: {rate:.0f} req/s (statuses {sorted(statuses)})")


if __name__ == "__main__":
    main()
