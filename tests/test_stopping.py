"""Stopping work, over real HTTP against a real gunicorn: a render's deadline stops every phase of every
format (GIF quantisation included), and a render whose client disconnects stops within a fraction of a
second under both workers. CPU is read from /proc for the server's whole process tree."""

from __future__ import annotations

import os
import re
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from email.message import Message
from pathlib import Path

import pytest

from iiif_server.check import free_port, running_server
from tests.conftest import block_colour, decode, pixel

pytestmark = pytest.mark.slow  # real servers, renders of seconds

_TICKS = os.sysconf("SC_CLK_TCK")


def get(url: str) -> tuple[int, Message, bytes, float]:
    """Status, headers, body and wall seconds of one GET (errors included)."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            return response.status, response.headers, response.read(), time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read(), time.monotonic() - started


def metric(base: str, name: str) -> float:
    """A counter's value on /metrics, summed over its label sets and the workers."""
    _, _, body, _ = get(base + "/metrics")
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? ([0-9.e+]+)$", re.M)
    return sum(float(value) for value in pattern.findall(body.decode()))


def server_cpu(port: int) -> float:
    """CPU seconds (user + system, reaped children included) of the server on ``port`` and its descendants."""
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            stats[int(entry.name)] = stat[stat.rindex(")") + 2 :].split()
    master = next(pid for pid in stats if f"--port\0{port}\0".encode() in _cmdline(pid) and b"serve" in _cmdline(pid))
    tree, grown = {master}, True
    while grown:
        children = {pid for pid, fields in stats.items() if int(fields[1]) in tree} - tree
        grown = bool(children)
        tree |= children
    return sum(sum(int(value) for value in stats[pid][11:15]) for pid in tree if pid in stats) / _TICKS


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() + b"\0"
    except OSError:
        return b""


DEADLINE = 1.0
#: Seconds past the deadline a stopped request may take (measured ~0.05 s; unstopped, the GIF took 4.3 s)
SLACK = 1.0

RUNAWAYS = {
    "jpeg": "/iiif/3/big.tif/full/^10000,7500/0/default.jpg",
    "png": "/iiif/3/big.tif/full/^10000,7500/0/default.png",
    "webp": "/iiif/3/big.tif/full/^10000,7500/0/default.webp",
    "tif": "/iiif/3/big.tif/full/^10000,7500/0/default.tif",
    # pixels in ~0.5 s, then gifsave quantises 16 MP with no chance to stop it: ~10-40 s unless killed
    "gif": "/iiif/3/big.tif/full/^4000,4000/0/default.gif",
    "rotated": "/iiif/3/big.tif/full/^6000,4500/33/bitonal.png",
    # untiled, decoded whole into memory, then rotated: both copies are watched (^6000,4800 took 0.7 s on an
    # idle machine: under the deadline)
    "decoded level, rotated": "/iiif/3/pattern.png/full/^10000,8000/90/gray.jpg",  # ~2 s unstopped, idle
}


def test_the_deadline_stops_every_phase_of_every_format(image_root: Path, tmp_path: Path) -> None:
    """One thread: each runaway ends within the deadline plus slack as a 503 with Retry-After, then the
    thread serves the next request, and no CPU is still being spent on any of them."""
    env = {
        "IIIF_SERVER_SERVER_RENDER_TIMEOUT": str(DEADLINE),
        "IIIF_SERVER_SERVER_THREADS": "1",
        "IIIF_SERVER_LANES_HEAVY_PIXELS": "0",
        "IIIF_SERVER_IMAGES_MAX_AREA": "0",
        "IIIF_SERVER_IMAGES_MAX_REQUEST_MB": "0",  # runaways on purpose: past the memory budget too
    }
    port = free_port()
    log = tmp_path / "server.log"
    with running_server(["serve", "--images", str(image_root), "--workers", "1"], port, env, log=log) as base:
        took = {}
        for name, path in RUNAWAYS.items():
            status, headers, body, took[name] = get(base + path)
            assert (status, headers["Retry-After"]) == (503, "1"), (name, status, body)
            assert b"took longer than 1 s" in body, name
        assert max(took.values()) < DEADLINE + SLACK, took
        status, _, body, _ = get(f"{base}/iiif/3/pattern.png/full/100,/0/default.png")
        image = decode(body)
        assert status == 200 and (image.width, image.height) == (100, 80) and pixel(image, 5, 5) == block_colour(0, 0)
        cpu = server_cpu(port)
        time.sleep(1.0)
        assert server_cpu(port) - cpu < 0.3, "a stopped render is still computing"
        assert metric(base, "iiif_render_timeouts_total") == len(RUNAWAYS)
    assert log.read_text().count(": rendering took longer than 1 s") == len(RUNAWAYS)


SLOW = "/iiif/3/big.tif/full/^10000,7500/0/default.jpg"  # several CPU seconds
SLOW_TWIN = "/iiif/3/big.tif/full/^10000,7500/0/color.jpg"  # the same work under another cache key


def cpu_until_idle(port: int, since: float, limit: float) -> float:
    """CPU seconds the server spent since the reading ``since``, once it has been idle for half a second."""
    end, last = time.monotonic() + limit, server_cpu(port)
    while time.monotonic() < end:
        time.sleep(0.5)
        now = server_cpu(port)
        if now - last < 0.05:
            break
        last = now
    return last - since


def _leave_during(base: str, path: str, after: float) -> None:
    """Send ``path``, then close the socket ``after`` seconds later, while it renders."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        time.sleep(after)


@pytest.mark.parametrize("worker", ["asgi", "gthread"])
def test_a_render_stops_when_its_client_disconnects(image_root: Path, tmp_path: Path, worker: str) -> None:
    """The CPU a render costs when its client leaves after 0.5 s is a fraction of what it costs in full;
    the abandonment is counted and logged (499)."""
    env = {
        "IIIF_SERVER_SERVER_WORKER": worker,
        "IIIF_SERVER_SERVER_RENDER_TIMEOUT": "120",
        "IIIF_SERVER_IMAGES_MAX_AREA": "0",
        "IIIF_SERVER_IMAGES_MAX_REQUEST_MB": "0",  # runaways on purpose: past the memory budget too
        "IIIF_SERVER_CACHE_MEMORY_MB": "0",
    }
    port = free_port()
    log = tmp_path / "server.log"
    with running_server(["serve", "--images", str(image_root), "--workers", "1"], port, env, log=log) as base:
        cpu = server_cpu(port)
        status, _, _, took = get(base + SLOW_TWIN)
        full = server_cpu(port) - cpu
        assert status == 200 and full > 1.5, full
        cpu = server_cpu(port)
        _leave_during(base, SLOW, after=0.5)
        abandoned = cpu_until_idle(port, cpu, limit=2 * took)
        assert abandoned < 0.4 * full, (abandoned, full)
        assert metric(base, "iiif_renders_abandoned_total") == 1
        status, _, body, _ = get(base + SLOW)  # not cached half-done: rendered in full when asked again
        assert status == 200 and decode(body).width == 10000
    assert re.search(rf'"GET {re.escape(SLOW)} HTTP/1.1" 499 ', log.read_text())


def test_a_render_goes_on_for_a_waiting_client_when_the_first_one_leaves(image_root: Path, tmp_path: Path) -> None:
    """Two clients ask for the same slow image; the first leaves: the second still gets it, rendered once."""
    env = {
        "IIIF_SERVER_SERVER_RENDER_TIMEOUT": "120",
        "IIIF_SERVER_IMAGES_MAX_AREA": "0",
        "IIIF_SERVER_IMAGES_MAX_REQUEST_MB": "0",
    }
    port = free_port()
    with running_server(["serve", "--images", str(image_root), "--workers", "1"], port, env) as base:
        with ThreadPoolExecutor(2) as pool:
            leaving = pool.submit(_leave_during, base, SLOW, 0.8)
            time.sleep(0.3)
            status, _, body, _ = pool.submit(get, base + SLOW).result()
            leaving.result()
        assert status == 200 and decode(body).width == 10000
        assert metric(base, "iiif_renders_total") == 1
        assert metric(base, "iiif_renders_abandoned_total") == 0
