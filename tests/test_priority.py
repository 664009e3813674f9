"""Under the uvicorn worker the pool threads and the libvips threads they start run ``[server]
thread_nice`` below the event loop (asgi.pool_thread), so under CPU load answers from memory keep
their latency while renders wait (bench/attack.py, scenario ``heavy``). Checked on a real server:
the nice value of every thread of the worker, after renders that started libvips' threads."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest

from iiif_server.check import free_port, running_server
from tests.test_stopping import _cmdline

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")


def _worker_threads(port: int) -> dict[str, list[tuple[str, int]]]:
    """{child pid: [(thread name, nice), ...]} of the server on ``port``; the child's own thread is "main"."""
    procs = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    master = next(pid for pid in procs if f"--port\0{port}\0".encode() in _cmdline(pid) and b"serve" in _cmdline(pid))
    found: dict[str, list[tuple[str, int]]] = {}
    for pid in procs:
        try:
            parent = int((Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split())[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent != master:
            continue
        threads = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                name = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            threads.append((name if task.name != str(pid) else "main", int(fields[16])))
        found[str(pid)] = threads
    return found


@pytest.mark.parametrize("nice", [10, 0])
def test_pool_and_libvips_threads_run_below_the_event_loop(image_root: Path, tmp_path: Path, nice: int) -> None:
    port = free_port()
    env = {"IIIF_SERVER_SERVER_THREAD_NICE": str(nice), "IIIF_SERVER_CACHE_MEMORY_MB": "0"}
    args = ["serve", "--images", str(image_root), "--workers", "1"]
    with running_server(args, port, env, log=tmp_path / "server.log") as base:
        for width in (300, 301, 302, 303):  # renders on the pool: they start libvips' worker threads
            with urllib.request.urlopen(f"{base}/iiif/3/big.tif/full/{width},/0/default.jpg", timeout=60) as r:
                assert r.status == 200 and r.read(2) == b"\xff\xd8"
        # the worker: the child with a request pool (not, say, multiprocessing's resource tracker)
        (threads,) = [t for t in _worker_threads(port).values() if any(name == "iiif-pool" for name, _ in t)]
    assert [n for name, n in threads if name == "main"] == [0]  # the event loop
    pool = [n for name, n in threads if name == "iiif-pool"]
    vips = [n for name, n in threads if name.startswith("libvips")]
    assert pool and vips, threads
    assert set(pool) == set(vips) == {nice}, threads
