"""Time and peak RSS of single expensive requests against a real ``iiif-server serve`` (issue 11, budgets).

Each case gets a fresh one-worker server, so the worker's ``VmHWM`` (peak resident set) is that
request's alone; the figure is the worker's peak minus its peak before the request.

    python bench/budgets.py IMAGE_ROOT 'METHOD PATH' ...    e.g.  'GET /iiif/3/mid.tif/full/^10000,10000/0/default.gif'
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from iiif_server.check import free_port, running_server


def _worker(port: int) -> int:
    """The server's worker: of the processes started with ``--port PORT``, the one whose parent is one too."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if b"--port\0%d\0" % port in command:
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    (worker,) = [pid for pid, parent in parents.items() if parent in parents]
    return worker


def _hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def measure(root: str, method: str, path: str, env: dict[str, str]) -> str:
    port = free_port()
    with running_server(["serve", "--images", root, "--workers", "1"], port, env) as base:
        worker = _worker(port)
        before = _hwm_kb(worker)
        started = time.perf_counter()
        request = urllib.request.Request(base + path, method=method)
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                status, length = response.status, len(response.read())
                header = response.headers.get("Content-Length")
        except urllib.error.HTTPError as error:
            status, length, header = error.code, 0, error.read().decode().strip()
        elapsed = time.perf_counter() - started
        peak = _hwm_kb(worker) - before
    return f"{method} {path}: {status} {elapsed:.2f} s, +{peak / 1024:.0f} MB peak RSS, body {length} B, {header}"


if __name__ == "__main__":
    environment = {
        "IIIF_SERVER_LANES_HEAVY_PIXELS": "0",
        "IIIF_SERVER_SERVER_RENDER_TIMEOUT": "600",
        "IIIF_SERVER_SERVER_TIMEOUT": "600",
    }
    for case in sys.argv[2:]:
        verb, target = case.split(" ", 1)
        print(measure(sys.argv[1], verb, target, environment), flush=True)
