"""Hostile-traffic probe (issue 11): what slow, idle, oversized, malformed and abusive requests do to a real server.

    .venv/bin/python bench/attack.py [--quick] [--only NAME[,NAME]] [--images DIR] [--json PATH]

Starts ``iiif-server serve`` (its defaults, on 127.0.0.1 only, in a fresh temp folder so its disk cache starts
empty) over an image root of synthetic images, runs each scenario bounded in time and request count, and prints
one Markdown table (scenario, what was measured, figure, the issue's target, pass/fail) plus a JSON file.

Every socket operation has a timeout and every scenario runs under a watchdog: a server that hangs shows as
"timeout" in the table, never hangs the tool. Between scenarios the workers must be idle again (a render
left running by the previous scenario would skew the next one) and answer info.json, else the server is
restarted. Every process started here is stopped on exit, Ctrl-C, SIGTERM or error. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import http.client
import json
import math
import multiprocessing
import os
import random
import re
import resource
import secrets
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyvips
from host import describe
from run import _raise_exit, become_subreaper, free_port, our_binary, our_env, running
from synth_images import TIFF_OPTIONS, photo_like
from synth_images import build as build_photo

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
HOST = "127.0.0.1"
#: Images are made once and reused (git-ignored, as bench/images/): the 60 000² TIFF alone takes ~20 s.
DEFAULT_IMAGES = BENCH / "images" / "attack"
RESULTS = BENCH / "results"
PREFIX = "/iiif/3/"

MID = "mid.tif"  # 8 000 × 6 000 photo-like pyramid: the "mid-size image"
MID_SIZE = (8000, 6000)
WIDE = "wide.tif"  # 20 000 × 4 800 pyramid (96 MP, under the default maxArea): ^max and the 20 000-px region
WIDE_SIZE = (20000, 4800)
FLAT = "flat.tif"  # 60 000² tiled TIFF without a pyramid, JPEG-compressed (a few MB of black tiles)
FLAT_SIDE = 60000
SMALL = "small.tif"  # a small pyramid for the protocol, fuzz and admin scenarios
MANY = "many"  # a folder of MANY_FILES empty .tif files, for misses
MANY_FILES = 100_000
SECRET = "secret.tif"  # a real image OUTSIDE the root: traversal must never reach it
SECRET_SIZE = (123, 77)
#: Hostile files (scenario 16), small on disk. The PNG and JPEG come twice: declaring far more than
#: ``[images] max_untiled_pixels`` (250 MP: refused from the header) and just under it (reaches the decoder).
BOMB_PNG = "bomb.png"  # declares 100 000 × 100 000 grey pixels (10 GP), holds a zlib stream of no rows
BOMB_PNG_SIDE = 100_000
BOMB_JPG = "bomb.jpg"  # a 64 × 64 JPEG whose SOF0 declares 65 000 × 65 000
BOMB_JPG_SIDE = 65_000
BOMB_UNDER_SIDE = 15_000  # 225 MP: under the untiled limit
BOMB_CUT = "cut.tif"  # the first half of a 4 096 × 3 072 pyramidal TIFF
BOMB_EOF = "past-eof.tif"  # that pyramid whole, every tile offset of every level pointing past the end
BOMB_SOURCE_SIZE = (4096, 3072)
BOMBS = {
    BOMB_PNG: f"PNG declaring {BOMB_PNG_SIDE:,}², no rows",
    "bomb-225mp.png": f"PNG declaring {BOMB_UNDER_SIDE:,}², no rows",
    BOMB_JPG: f"JPEG declaring {BOMB_JPG_SIDE:,}², 64² of data",
    "bomb-225mp.jpg": f"JPEG declaring {BOMB_UNDER_SIDE:,}², 64² of data",
    BOMB_CUT: "pyramidal TIFF cut in half",
    BOMB_EOF: "pyramidal TIFF, tile offsets past EOF",
}

#: Normal traffic while under attack: as many clients as this, each on a new connection per request (as
#: browsers arriving while the attack holds the server), a mix of stored tiles and info.json, all cached.
NORMAL_CLIENTS = 2
#: The issue's bound on normal requests' p99 under slow or idle sockets, as a multiple of the unloaded p99.
P99_FACTOR = 3.0
ATTACK_SOCKETS = 1000
#: Seconds between the bytes a slowloris socket sends (each a byte of a request line).
SLOWLORIS_INTERVAL = 2.0
#: Heavy renders: answered (any status) within the default render deadline plus this slack.
RENDER_TIMEOUT = 30.0
RENDER_SLACK = 5.0
#: Peak RSS a single worker may gain while four oversized GIF renders are asked (a budget refuses them first).
GIF_RSS_MB = 512
#: CPU an abandoned render may still use after its client left ("within a fraction of a second").
ABANDONED_CPU_S = 0.5
ABANDONED_SHARE = 0.25
#: Four identical concurrent renders may cost at most this many times one render (single flight).
FLIGHT_RATIO = 1.5
HEAD_TARGET_S = 0.1
MISS_TARGET_MS = 1.0
ADMIN_TRIES = 50
#: A wrong token may be tried at most this many times before the client is throttled (429).
WEBP_MAX_SIDE = 16383
#: Heavy clients (scenario 15), each looping distinct uncached renders of these widths, images and formats.
HEAVY_CLIENTS = 32
HEAVY_WIDTHS = (1500, 3000)
HEAVY_FORMATS = ("jpg", "png")
#: Seconds the heavy clients run before normal traffic is measured beside them (the lanes fill up).
HEAVY_RAMP_S = 2.0
#: Each request to a hostile file (scenario 16): answered within this, and a worker gains at most this.
BOMB_TARGET_S = 2.0
BOMB_RSS_MB = 100
#: Seconds a request to a hostile file may take before it counts as "timeout" (18 requests fit the watchdog).
BOMB_TIMEOUT = 4.0


# ---------------------------------------------------------------- results


@dataclass
class Outcome:
    """One scenario's row: what was measured, the figure, the target, and whether it was met (None: no target)."""

    number: int
    name: str
    measured: str
    figure: str = ""
    target: str = ""
    passed: bool | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    #: How the server was before the scenario: started, idle after N s, or restarted (still busy).
    server: str = ""


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(len(ordered) * q / 100) - 1)]


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


# ---------------------------------------------------------------- images


def ensure_images(images: Path, needs: set[str]) -> Path:
    """Build what the chosen scenarios need under ``images`` (kept for the next run); return the image root."""
    root, outside = images / "root", images / "outside"
    root.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)

    def made(name: str, what: str, build: Callable[[Path], None]) -> None:
        path = root / name
        if name in needs and not path.exists():
            print(f"  building {what} ...", flush=True)
            partial = path.with_name(path.name + ".partial.tif")
            try:
                build(partial)
                partial.replace(path)
            finally:
                partial.unlink(missing_ok=True)

    needs = needs | {SMALL}
    made(SMALL, "small.tif (1 024 × 768)", lambda p: build_photo(p, 1024, 768, 11))
    made(MID, "mid.tif (8 000 × 6 000 pyramid, ~15 s)", lambda p: build_photo(p, *MID_SIZE, 12))
    made(
        WIDE,
        "wide.tif (20 000 × 4 800 pyramid, ~10 s)",
        lambda p: (
            photo_like(WIDE_SIZE[0] // 8, WIDE_SIZE[1] // 8, 13)
            .resize(8, kernel="linear")
            .tiffsave(str(p), **TIFF_OPTIONS)
        ),
    )
    made(
        FLAT,
        "flat.tif (60 000² tiled, no pyramid, ~20 s)",
        lambda p: (
            pyvips.Image.black(FLAT_SIDE, FLAT_SIDE)
            .copy(interpretation="b-w")
            .tiffsave(str(p), tile=True, pyramid=False, compression="jpeg", tile_width=256, tile_height=256)
        ),
    )
    if MANY in needs and not (root / MANY / "done").exists():
        print(f"  creating {MANY_FILES:,} empty files in {MANY}/ ...", flush=True)
        (root / MANY).mkdir(exist_ok=True)
        for index in range(MANY_FILES):
            (root / MANY / f"KH-{index:06d}.tif").touch()
        (root / MANY / "done").touch()
    if BOMB_PNG in needs:
        _make_bombs(root, outside)
    secret = outside / SECRET
    if not secret.exists():
        pyvips.Image.black(*SECRET_SIZE).tiffsave(str(secret))
    link = root / "link.tif"  # a symlink leaving the root: must be refused
    if not link.is_symlink():
        link.symlink_to(Path("..") / "outside" / SECRET)
    return root


def _make_bombs(root: Path, outside: Path) -> None:
    """Write the hostile files of scenario 16 (each a few KB to a few MB, made in ~3 s) where missing."""
    for name, side in ((BOMB_PNG, BOMB_PNG_SIDE), ("bomb-225mp.png", BOMB_UNDER_SIDE)):
        if not (root / name).exists():
            (root / name).write_bytes(png_bomb(side, side))
    for name, side in ((BOMB_JPG, BOMB_JPG_SIDE), ("bomb-225mp.jpg", BOMB_UNDER_SIDE)):
        if not (root / name).exists():
            (root / name).write_bytes(jpeg_bomb(side, side))
    source = outside / "bomb-source.tif"  # a real pyramid, outside the root: the two broken TIFFs come from it
    if not (root / BOMB_CUT).exists() or not (root / BOMB_EOF).exists():
        print("  building the bomb files (~3 s) ...", flush=True)
        build_photo(source, *BOMB_SOURCE_SIZE, 14)
        data = source.read_bytes()
        (root / BOMB_CUT).write_bytes(data[: len(data) // 2])
        (root / BOMB_EOF).write_bytes(tiles_past_eof(data))


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header declaring ``width`` × ``height`` 8-bit grey pixels, with an IDAT of no rows at all."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def jpeg_bomb(width: int, height: int) -> bytes:
    """A real 64 × 64 baseline JPEG whose frame header (SOF0) is rewritten to declare ``width`` × ``height``."""
    data = bytearray(pyvips.Image.black(64, 64).jpegsave_buffer(Q=50, optimize_coding=False))
    sof = data.index(b"\xff\xc0")  # marker, length (2), precision (1), height (2), width (2)
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def tiles_past_eof(tiff: bytes) -> bytes:
    """``tiff`` (classic little-endian TIFF) with every TileOffsets value of every IFD pointing past its end."""
    data = bytearray(tiff)
    if data[:4] != b"II*\x00":
        raise ValueError("expected a classic little-endian TIFF")
    beyond = len(data) + 1_000_000
    patched = 0
    (ifd,) = struct.unpack_from("<I", data, 4)
    while ifd:
        (entries,) = struct.unpack_from("<H", data, ifd)
        for index in range(entries):
            at = ifd + 2 + 12 * index
            tag, kind, count = struct.unpack_from("<HHI", data, at)
            if tag == 324 and kind == 4:  # TileOffsets, LONG (what libtiff writes)
                values = at + 8 if count == 1 else struct.unpack_from("<I", data, at + 8)[0]
                for n in range(count):
                    struct.pack_into("<I", data, values + 4 * n, beyond + n)
                patched += 1
        (ifd,) = struct.unpack_from("<I", data, ifd + 2 + 12 * entries)
    if not patched:
        raise ValueError("no TileOffsets (LONG) found")
    return bytes(data)


# ---------------------------------------------------------------- the server


@dataclass
class Target:
    """The running server: where it is, its process (gunicorn's master) and its log."""

    port: int
    proc: subprocess.Popen
    log: Path

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def workers(self) -> list[int]:
        """gunicorn's worker pids (multiprocessing's resource tracker left out)."""
        pids: list[int] = []
        with contextlib.suppress(OSError):
            for child in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split():
                with contextlib.suppress(OSError):
                    if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes():
                        pids.append(int(child))
        return pids

    def cpu(self) -> float:
        """CPU seconds (user + system) the current workers have used so far."""
        ticks = 0
        for pid in self.workers():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> dict[int, float]:
        """Resident memory of each worker now, in MB."""
        found: dict[int, float] = {}
        for pid in self.workers():
            with contextlib.suppress(OSError):
                match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
                if match:
                    found[pid] = int(match.group(1)) / 1024
        return found


class Server:
    """Starts, checks and restarts ``iiif-server serve``; one is shared by the scenarios of a group."""

    def __init__(self, workdir: Path, root: Path, env: dict[str, str], name: str) -> None:
        self.workdir, self.root, self.env, self.name = workdir, root, env, name
        self.target: Target | None = None
        self._stack = contextlib.ExitStack()
        self.restarts = 0

    def start(self) -> Target:
        binary = our_binary()
        if binary is None:
            raise RuntimeError("iiif-server not found: run from the project's venv (pip install -e .)")
        port = free_port()
        log = self.workdir / f"{self.name}-{self.restarts}.log"
        cmd = [str(binary), "serve", "--images", str(self.root), "--port", str(port), "--host", HOST]
        proc = self._stack.enter_context(running(cmd, self.name, log, env=self.env, cwd=self.workdir))
        target = Target(port, proc, log)
        deadline = time.monotonic() + 90
        expected = 2 * (os.cpu_count() or 1) if "IIIF_SERVER_SERVER_WORKERS" not in self.env else 1
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}:\n{tail(log)}")
            if get(target, f"{SMALL}/info.json", timeout=5).status == 200 and len(target.workers()) >= expected:
                self.target = target
                return target
            time.sleep(0.2)
        raise RuntimeError(f"the server did not answer within 90 s:\n{tail(log)}")

    def stop(self) -> None:
        self._stack.close()
        self._stack = contextlib.ExitStack()
        self.target = None

    def restart(self) -> Target:
        self.stop()
        self.restarts += 1
        return self.start()

    def ready(self, settle_cap: float) -> tuple[Target, str]:
        """The server, with idle workers that answer; restarted if they are still busy after ``settle_cap`` s."""
        if self.target is None:
            return self.start(), "started"
        target = self.target
        deadline = time.monotonic() + settle_cap
        waited = time.monotonic()
        quiet = 0  # consecutive seconds with (almost) no worker CPU: a render left running would show
        while time.monotonic() < deadline:
            before = target.cpu()
            time.sleep(0.5)
            quiet = quiet + 1 if target.cpu() - before < 0.03 else 0
            if quiet >= 3 and get(target, f"{SMALL}/info.json", timeout=5).status == 200:
                return target, f"idle after {time.monotonic() - waited:.1f} s"
        return self.restart(), f"restarted: still busy or not answering after {settle_cap:.0f} s"


def tail(log: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


# ---------------------------------------------------------------- HTTP helpers (every operation under a timeout)


@dataclass
class Answer:
    status: int  # 0: no answer (timeout, reset, closed)
    headers: dict[str, str]
    body: bytes
    seconds: float
    error: str = ""


def get(
    target: Target,
    tail_: str,
    timeout: float = 10,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    path: str | None = None,
) -> Answer:
    """One request on a new connection; never raises for network trouble (status 0 and the error instead)."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(HOST, target.port, timeout=timeout)
    try:
        conn.request(method, path or PREFIX + tail_, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        hdrs = {k.lower(): v for k, v in response.getheaders()}
        return Answer(response.status, hdrs, body, time.monotonic() - started)
    except (OSError, http.client.HTTPException) as err:
        return Answer(0, {}, b"", time.monotonic() - started, type(err).__name__)
    finally:
        conn.close()


def raw(target: Target, payload: bytes, timeout: float = 10) -> Answer:
    """Send ``payload`` as is and parse what comes back (status line and headers; the body up to 64 KB)."""
    started = time.monotonic()
    data = b""
    try:
        with socket.create_connection((HOST, target.port), timeout=timeout) as sock:
            with contextlib.suppress(OSError):  # the server may answer and close before reading it all
                sock.sendall(payload)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and len(data) < 65536:
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                data += chunk
                head, sep, body = data.partition(b"\r\n\r\n")
                if sep and len(body) >= int(dict(parse_headers(head)).get("content-length", "65536")):
                    break
    except OSError as err:
        if not data:
            return Answer(0, {}, b"", time.monotonic() - started, type(err).__name__)
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    if not match:
        return Answer(0, {}, data, time.monotonic() - started, "no answer" if not data else "not HTTP")
    return Answer(int(match.group(1)), dict(parse_headers(head)), body, time.monotonic() - started)


def parse_headers(head: bytes) -> list[tuple[str, str]]:
    pairs = []
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            pairs.append((name.decode("latin-1").strip().lower(), value.decode("latin-1").strip()))
    return pairs


def concurrently(jobs: Sequence[Callable[[], Any]], timeout: float) -> list[Any]:
    """Run ``jobs`` on threads at once; a job still running after ``timeout`` gives None."""
    results: list[Any] = [None] * len(jobs)

    def run(index: int, job: Callable[[], Any]) -> None:
        results[index] = job()

    threads = [threading.Thread(target=run, args=(i, job), daemon=True) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return results


def size_of(body: bytes) -> tuple[int, int] | None:
    """Width and height of an encoded image (header only)."""
    with contextlib.suppress(pyvips.Error):
        image = pyvips.Image.new_from_buffer(body, "")
        return image.width, image.height
    return None


# ---------------------------------------------------------------- normal traffic and attack sockets


def normal_urls() -> list[str]:
    """Stored tiles of the mid image at four zoom levels and two info.json: what a viewer asks for, all cached."""
    urls = [f"{MID}/info.json", f"{SMALL}/info.json"]
    for scale in (1, 2, 4, 8):
        for x, y in ((0, 1), (1, 1), (2, 1)):  # inside the image at every scale
            span = 256 * scale
            urls.append(f"{MID}/{x * span},{y * span},{span},{span}/256,256/0/default.jpg")
    return urls


def warm(target: Target) -> list[str]:
    """Ask every normal URL once (so later answers are cache hits); return the ones that answered 200."""
    return [url for url in normal_urls() if get(target, url, timeout=30).status == 200]


@dataclass
class Load:
    """Normal requests' latencies while something else goes on."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    timeouts: int = 0
    #: What the errors were: a status ("503") or a socket error's name ("ConnectionResetError"), and how many.
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def p50_ms(self) -> float:
        return pct(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return pct(self.latencies, 99) * 1000

    def summary(self) -> dict[str, Any]:
        return {
            "requests": len(self.latencies),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "errors": self.errors,
            "timeouts": self.timeouts,
            "error_kinds": self.kinds,
        }


def normal_load(target: Target, urls: Sequence[str], seconds: float, timeout: float, seed: int) -> Load:
    """NORMAL_CLIENTS clients asking ``urls`` at random for ``seconds``; a timeout counts as ``timeout`` s."""
    load = Load()
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        rng = random.Random(seed * 100 + index)
        while time.monotonic() < stop_at:
            answer = get(target, rng.choice(urls), timeout=timeout)
            with lock:
                load.latencies.append(answer.seconds)
                if answer.status != 200:
                    load.errors += 1
                    load.timeouts += answer.error in ("TimeoutError", "timeout")
                    kind = answer.error or str(answer.status)
                    load.kinds[kind] = load.kinds.get(kind, 0) + 1

    concurrently([lambda i=i: client(i) for i in range(NORMAL_CLIENTS)], seconds + timeout + 5)
    return load


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files to ``wanted`` (within the hard limit); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return int(soft)


class Swarm:
    """Many non-blocking sockets to the server, driven from one thread; counts those the server closed."""

    def __init__(self, target: Target, count: int, connect_within: float) -> None:
        self.open: list[socket.socket] = []
        self.closed_at: list[float] = []
        self.answered = 0
        self.failed = 0
        self.started = time.monotonic()
        selector = selectors.DefaultSelector()
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            if sock.connect_ex((HOST, target.port)) not in (0, errno.EINPROGRESS):
                sock.close()
                self.failed += 1
                continue
            selector.register(sock, selectors.EVENT_WRITE)
        deadline = time.monotonic() + connect_within
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.2):
                sock = key.fileobj  # type: ignore[assignment]
                selector.unregister(sock)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    self.open.append(sock)
                else:
                    sock.close()
                    self.failed += 1
        for key in list(selector.get_map().values()):  # still connecting: the server's backlog is full
            key.fileobj.close()  # type: ignore[union-attr]
            self.failed += 1
        selector.close()

    def send_each(self, data: Callable[[int], bytes]) -> None:
        """Send ``data(i)`` on every open socket; a socket the server closed or reset is counted and dropped."""
        alive = []
        for index, sock in enumerate(self.open):
            try:
                if self._closed_by_server(sock):
                    raise ConnectionResetError
                payload = data(index)
                if payload:
                    sock.send(payload)
                alive.append(sock)
            except BlockingIOError:
                alive.append(sock)
            except OSError:
                self._drop(sock)
        self.open = alive

    def read_responses(self, within: float) -> int:
        """Read one complete HTTP response on every open socket (keep-alive); return how many got one."""
        buffers: dict[socket.socket, bytes] = {sock: b"" for sock in self.open}
        complete: set[socket.socket] = set()
        selector = selectors.DefaultSelector()
        for sock in self.open:
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + within
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.2):
                sock = key.fileobj  # type: ignore[assignment]
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    selector.unregister(sock)
                    continue
                buffers[sock] += chunk
                head, sep, body = buffers[sock].partition(b"\r\n\r\n")
                length = int(dict(parse_headers(head)).get("content-length", "0")) if sep else -1
                if sep and len(body) >= length:
                    complete.add(sock)
                    selector.unregister(sock)
        selector.close()
        self.answered = len(complete)
        alive = []
        for sock in self.open:
            if sock in complete:
                alive.append(sock)
            else:
                self._drop(sock)
        self.open = alive
        return len(complete)

    def _closed_by_server(self, sock: socket.socket) -> bool:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if data:
            self.answered += 1  # e.g. a 408: the server answers, then closes
            return self._closed_by_server(sock)
        return True

    def _drop(self, sock: socket.socket) -> None:
        self.closed_at.append(time.monotonic() - self.started)
        sock.close()

    def check(self) -> None:
        self.send_each(lambda _i: b"")

    def close(self) -> None:
        for sock in self.open:
            sock.close()
        self.open = []


# ---------------------------------------------------------------- scenarios


@dataclass
class Context:
    """What every scenario gets: the shared server, the run's pace and a results store."""

    server: Server
    quick: bool
    seed: int
    baseline_p99_ms: float | None = None
    #: The normal URLs that answered 200 when warmed (baseline), reused under attack.
    urls: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Seconds of measured normal traffic."""
        return 3.0 if self.quick else 12.0

    @property
    def cap(self) -> float:
        """Seconds a heavy request may take before it counts as "timeout"."""
        return 10.0 if self.quick else RENDER_TIMEOUT + RENDER_SLACK + 5


def baseline(ctx: Context, target: Target, out: Outcome) -> None:
    urls = warm(target)
    load = normal_load(target, urls, ctx.duration, 5.0, ctx.seed)
    ctx.baseline_p99_ms, ctx.urls = load.p99_ms, urls
    out.figure = f"p50 {load.p50_ms:.1f} ms, p99 {load.p99_ms:.1f} ms ({len(load.latencies)} req)"
    out.target = "reference"
    out.passed = None if load.errors == 0 and urls else False
    out.details = {"load": load.summary(), "urls": urls}


def _under_attack(ctx: Context, target: Target, swarm: Swarm, hold: float, tick: Callable[[], None]) -> Load:
    """Normal traffic while ``swarm`` is held open (``tick`` every SLOWLORIS_INTERVAL s), for ``hold`` seconds."""
    urls = ctx.urls or normal_urls()
    result: dict[str, Load] = {}
    measuring = threading.Thread(
        target=lambda: result.update(load=normal_load(target, urls, ctx.duration, 5.0, ctx.seed + 1)), daemon=True
    )
    measuring.start()
    stop_at = swarm.started + hold
    while time.monotonic() < stop_at or measuring.is_alive():
        tick()
        time.sleep(SLOWLORIS_INTERVAL)
        if time.monotonic() > stop_at + ctx.duration + 30:
            break
    measuring.join(1)
    return result.get("load") or Load(errors=1)


def _p99_verdict(ctx: Context, load: Load) -> tuple[str, bool | None]:
    if ctx.baseline_p99_ms is None:
        return f"p99 ≤ {P99_FACTOR:g}× baseline (baseline not run)", None
    limit = P99_FACTOR * ctx.baseline_p99_ms
    return f"p99 ≤ {limit:.1f} ms ({P99_FACTOR:g}× baseline), no errors", load.p99_ms <= limit and load.errors == 0


def slowloris(ctx: Context, target: Target, out: Outcome) -> None:
    line = f"GET {PREFIX}{SMALL}/info.json HTTP/1.1\r\nHost: {HOST}\r\n".encode()
    ctx.urls = warm(target)
    swarm = Swarm(target, ATTACK_SOCKETS, 10)
    connected = len(swarm.open)
    sent = [0]

    def tick() -> None:
        swarm.send_each(lambda _i: line[sent[0] % len(line) : sent[0] % len(line) + 1])
        sent[0] += 1

    hold = 10.0 if ctx.quick else 30.0
    try:
        load = _under_attack(ctx, target, swarm, hold, tick)
        swarm.check()
        held = time.monotonic() - swarm.started
    finally:
        still_open = len(swarm.open)
        swarm.close()
    closed = connected - still_open
    out.target, out.passed = _p99_verdict(ctx, load)
    out.target += f"; slow sockets closed within {held:.0f} s"
    out.passed = bool(out.passed) and closed == connected if out.passed is not None else None
    out.figure = (
        f"p99 {load.p99_ms:.1f} ms, {load.errors} errors ({load.timeouts} timeouts) of {len(load.latencies)}; "
        f"closed {closed}/{connected} after {held:.0f} s"
    )
    out.details = {
        "load": load.summary(),
        "connected": connected,
        "connect_failed": swarm.failed,
        "closed_by_server": closed,
        "first_closed_after_s": round(min(swarm.closed_at), 2) if swarm.closed_at else None,
        "answered": swarm.answered,
        "held_s": round(held, 1),
        "bytes_sent_per_socket": sent[0],
    }


def idle(ctx: Context, target: Target, out: Outcome) -> None:
    request = f"GET {PREFIX}{SMALL}/info.json HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    ctx.urls = warm(target)
    # half got one answer and keep the connection (keep-alive), half connected and never sent a byte
    served = Swarm(target, ATTACK_SOCKETS // 2, 10)
    silent = Swarm(target, ATTACK_SOCKETS - ATTACK_SOCKETS // 2, 10)
    connected = len(served.open), len(silent.open)
    try:
        served.send_each(lambda _i: request)
        answered = served.read_responses(15 if ctx.quick else 30)

        def tick() -> None:
            served.check()
            silent.check()

        load = _under_attack(ctx, target, served, ctx.duration, tick)
        tick()
        held = time.monotonic() - served.started
    finally:
        still_open = len(served.open), len(silent.open)
        served.close()
        silent.close()
    out.target, out.passed = _p99_verdict(ctx, load)
    out.figure = (
        f"p99 {load.p99_ms:.1f} ms, {load.errors} errors ({load.timeouts} timeouts) of {len(load.latencies)}; "
        f"still open after {held:.0f} s: {still_open[0]}/{answered} after an answer, "
        f"{still_open[1]}/{connected[1]} that never sent a byte"
    )
    out.details = {
        "load": load.summary(),
        "connected": {"served": connected[0], "silent": connected[1]},
        "connect_failed": served.failed + silent.failed,
        "answered_before_idle": answered,
        "still_open": {"served": still_open[0], "silent": still_open[1]},
        "held_s": round(held, 1),
    }


class Sampler:
    """Samples the workers' RSS every 0.1 s while the block runs: the peak of each worker and of their sum."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.before = target.rss_mb()
        self.peak: dict[int, float] = dict(self.before)
        self.peak_total = sum(self.before.values())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            now = self.target.rss_mb()
            for pid, mb in now.items():
                self.peak[pid] = max(self.peak.get(pid, 0.0), mb)
            self.peak_total = max(self.peak_total, sum(now.values()))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(2)

    def worst_gain(self) -> float:
        """Largest RSS gain of one worker over its level before (a worker started meanwhile: its peak)."""
        return max((mb - self.before.get(pid, 0.0) for pid, mb in self.peak.items()), default=0.0)


def gif(ctx: Context, target: Target, out: Outcome) -> None:
    urls = [f"{MID}/full/^{10000 - i},{10000 - i}/0/default.gif" for i in range(4)]  # distinct: no sharing
    cpu0 = target.cpu()
    with Sampler(target) as sampler:
        started = time.monotonic()
        answers = concurrently([lambda u=u: get(target, u, timeout=ctx.cap) for u in urls], ctx.cap + 5)
        wall = time.monotonic() - started
    statuses = [a.status if a else 0 for a in answers]
    slowest = max((a.seconds for a in answers if a), default=ctx.cap)
    timed_out = sum(1 for a in answers if a is None or a.status == 0)
    gain = sampler.worst_gain()
    out.figure = (
        f"status {','.join(map(str, statuses))}; slowest {fmt_s(slowest)}"
        + (f" ({timed_out} timeout at {ctx.cap:.0f} s)" if timed_out else "")
        + f"; worst worker +{gain:.0f} MB RSS"
    )
    out.target = f"each answered ≤ {RENDER_TIMEOUT + RENDER_SLACK:.0f} s; a worker gains ≤ {GIF_RSS_MB} MB"
    out.passed = timed_out == 0 and slowest <= RENDER_TIMEOUT + RENDER_SLACK and gain <= GIF_RSS_MB
    out.details = {
        "urls": urls,
        "statuses": statuses,
        "seconds": [round(a.seconds, 2) if a else None for a in answers],
        "wall_s": round(wall, 2),
        "rss_before_mb": {str(k): round(v) for k, v in sampler.before.items()},
        "rss_peak_mb": {str(k): round(v) for k, v in sampler.peak.items()},
        "rss_peak_total_mb": round(sampler.peak_total),
        "worker_cpu_s": round(target.cpu() - cpu0, 2),
        "bodies": [a.body[:200].decode(errors="replace") for a in answers if a and a.status != 200],
    }


def rotation(ctx: Context, target: Target, out: Outcome) -> None:
    url = f"{MID}/full/^10000,10000/45/default.jpg"
    info = get(target, f"{MID}/info.json", timeout=30)
    max_area = 100_000_000
    with contextlib.suppress(ValueError, KeyError):
        max_area = int(json.loads(info.body).get("maxArea", max_area))
    answer = get(target, url, timeout=ctx.cap)
    size = size_of(answer.body) if answer.status == 200 else None
    pixels = size[0] * size[1] if size else 0
    if answer.status == 0:
        out.figure = f"timeout after {fmt_s(answer.seconds)}"
    elif size:
        out.figure = f"{answer.status}: {size[0]}×{size[1]} = {pixels / 1e6:.0f} MP in {fmt_s(answer.seconds)}"
    else:
        out.figure = f"{answer.status} in {fmt_s(answer.seconds)}: {answer.body[:80].decode(errors='replace').strip()}"
    out.target = f"400, or output ≤ maxArea ({max_area / 1e6:.0f} MP) after rotation"
    out.passed = answer.status == 400 or (answer.status == 200 and 0 < pixels <= max_area)
    out.details = {"url": url, "status": answer.status, "size": size, "pixels": pixels, "seconds": answer.seconds}


def head(ctx: Context, target: Target, out: Outcome) -> None:
    url = f"{WIDE}/full/^max/0/default.jpg"
    cpu0 = target.cpu()
    answer = get(target, url, timeout=ctx.cap, method="HEAD")
    cpu = target.cpu() - cpu0
    out.figure = (
        f"{answer.status or 'timeout'} in {fmt_s(answer.seconds)}, worker CPU {cpu:.2f} s, "
        f"Content-Length {answer.headers.get('content-length', '-')}"
    )
    out.target = f"no render: ≤ {HEAD_TARGET_S * 1000:.0f} ms"
    out.passed = answer.status == 200 and answer.seconds <= HEAD_TARGET_S
    out.details = {"url": url, "status": answer.status, "seconds": answer.seconds, "worker_cpu_s": cpu}


def _settled_cpu(target: Target, since: float, cap: float) -> float:
    """Worker CPU used since ``since`` (a ``target.cpu()`` reading), once the workers are idle (or after ``cap`` s)."""
    deadline = time.monotonic() + cap
    quiet = 0
    while time.monotonic() < deadline and quiet < 2:
        before = target.cpu()
        time.sleep(0.5)
        quiet = quiet + 1 if target.cpu() - before < 0.03 else 0
    return target.cpu() - since


def flight(ctx: Context, target: Target, out: Outcome) -> None:
    width = 3600 if ctx.quick else 6000
    one_url, four_url = f"{MID}/full/{width},/0/default.png", f"{MID}/full/{width - 1},/0/default.png"
    cpu0 = target.cpu()
    one = get(target, one_url, timeout=ctx.cap)
    one_cpu = _settled_cpu(target, cpu0, 10)
    cpu1 = target.cpu()
    answers = concurrently([lambda: get(target, four_url, timeout=ctx.cap)] * 4, ctx.cap + 5)
    four_cpu = _settled_cpu(target, cpu1, 10)
    statuses = [a.status if a else 0 for a in answers]
    ratio = four_cpu / one_cpu if one_cpu > 0 else float("inf")
    out.figure = (
        f"one render {one_cpu:.2f} s CPU ({one.status}); four identical {four_cpu:.2f} s "
        f"({','.join(map(str, statuses))}): {ratio:.2f}×"
    )
    out.target = f"four ≤ {FLIGHT_RATIO:g}× one, all 200"
    out.passed = one.status == 200 and statuses == [200] * 4 and ratio <= FLIGHT_RATIO
    out.details = {
        "one_url": one_url,
        "four_url": four_url,
        "one_cpu_s": round(one_cpu, 2),
        "one_seconds": round(one.seconds, 2),
        "four_cpu_s": round(four_cpu, 2),
        "four_seconds": [round(a.seconds, 2) if a else None for a in answers],
        "statuses": statuses,
        "ratio": round(ratio, 2),
    }


def disconnect(ctx: Context, target: Target, out: Outcome) -> None:
    width = 3600 if ctx.quick else 6000
    # the cost of one such render, completed (a width none of the abandoned ones uses)
    cpu0 = target.cpu()
    full = get(target, f"{MID}/full/{width + 8},/0/default.png", timeout=ctx.cap)
    one_cpu = _settled_cpu(target, cpu0, 10)
    socks = []
    for i in range(8):
        with contextlib.suppress(OSError):
            sock = socket.create_connection((HOST, target.port), timeout=5)
            sock.sendall(f"GET {PREFIX}{MID}/full/{width - i},/0/default.png HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            socks.append(sock)
    time.sleep(0.2)
    cpu_at_close = target.cpu()
    for sock in socks:
        sock.close()
    after = _settled_cpu(target, cpu_at_close, ctx.cap)
    per = after / max(len(socks), 1)
    # short renders (--quick) end by themselves within 0.5 s: then a quarter of a completed one is the bound
    limit = min(ABANDONED_CPU_S, ABANDONED_SHARE * one_cpu)
    out.figure = (
        f"{after:.2f} s worker CPU after {len(socks)} clients left ({per:.2f} s each; "
        f"one completed render: {one_cpu:.2f} s)"
    )
    out.target = (
        f"≤ {limit:.2f} s CPU per abandoned render (≤ {ABANDONED_CPU_S:g} s and ≤ {ABANDONED_SHARE:g}× a render)"
    )
    out.passed = full.status == 200 and len(socks) == 8 and per <= limit
    out.details = {
        "one_render_cpu_s": round(one_cpu, 2),
        "one_render_status": full.status,
        "clients": len(socks),
        "cpu_after_disconnect_s": round(after, 2),
        "cpu_per_abandoned_s": round(per, 2),
    }


def misses(ctx: Context, target: Target, out: Outcome) -> None:
    rng = random.Random(ctx.seed)
    missing = [f"{MANY}%2Fmissing-{rng.randrange(10**9)}.tif/info.json" for _ in range(60 if ctx.quick else 200)]
    first = get(target, missing[0], timeout=30)
    # unloaded: one keep-alive connection, one miss after another (the first ones warm the folder)
    times: list[float] = []
    conn = http.client.HTTPConnection(HOST, target.port, timeout=10)
    statuses: dict[int, int] = {}
    try:
        for tail_ in missing[1:]:
            started = time.monotonic()
            conn.request("GET", PREFIX + tail_)
            response = conn.getresponse()
            response.read()
            times.append(time.monotonic() - started)
            statuses[response.status] = statuses.get(response.status, 0) + 1
    except (OSError, http.client.HTTPException) as err:
        out.details["sequential_error"] = type(err).__name__
    finally:
        conn.close()
    median_ms = pct(times, 50) * 1000
    wrk = _wrk_misses(target, ctx.duration, ctx.seed) if shutil.which("wrk") else None
    load = (
        f"; 8 clients: {wrk['rps']:.0f} req/s, mean {wrk['mean_ms']:.2f} ms"
        if wrk and "rps" in wrk
        else "; 8 clients: " + (str(wrk.get("error")) if wrk else "wrk not installed")
    )
    out.figure = f"one miss: median {median_ms:.2f} ms (min {min(times, default=0) * 1000:.2f}){load}"
    out.target = f"a miss < {MISS_TARGET_MS:g} ms (median, unloaded, over HTTP); always 404"
    out.passed = (
        first.status == 404 and set(statuses) == {404} and len(times) == len(missing) - 1 and median_ms < MISS_TARGET_MS
    )
    out.details.update(
        {
            "first_status": first.status,
            "first_body": first.body[:120].decode(errors="replace"),
            "first_seconds": round(first.seconds, 4),
            "sequential_statuses": statuses,
            "sequential_median_ms": round(median_ms, 3),
            "sequential_p99_ms": round(pct(times, 99) * 1000, 3),
            "wrk_c8": wrk,
        }
    )


def _wrk_misses(target: Target, seconds: float, seed: int) -> dict[str, Any]:
    """wrk, 8 connections, random missing ids in the big folder: req/s, mean latency, status counts."""
    script = (
        f"math.randomseed({seed})\n"
        "request = function()\n"
        f'  return wrk.format("GET", "{PREFIX}{MANY}%2Fmissing-" .. math.random(1, 1000000000) .. ".tif/info.json")\n'
        "end\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(script)
        lua.flush()
        cmd = ["wrk", "-t2", "-c8", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "10s", "-s", lua.name]
        try:
            done = subprocess.run(
                [*cmd, target.base], capture_output=True, text=True, timeout=seconds + 30, check=False
            )
        except subprocess.TimeoutExpired:
            return {"error": "timeout"}
    text = done.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    mean = re.search(r"Latency\s+([\d.]+)(us|ms|s)\b", text)
    if not (rps and mean):
        return {"error": f"wrk output not understood: {text[-200:]!r}"}
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[mean.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    total = re.search(r"(\d+) requests in", text)
    return {
        "rps": float(rps.group(1)),
        "mean_ms": float(mean.group(1)) * scale,
        "requests": int(total.group(1)) if total else None,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def flat_tiff(ctx: Context, target: Target, out: Outcome) -> None:
    view = get(target, f"{FLAT}/full/1000,/0/default.jpg", timeout=ctx.cap)
    tile = get(target, f"{FLAT}/0,0,256,256/256,256/0/default.jpg", timeout=30)
    tile_size = size_of(tile.body) if tile.status == 200 else None
    out.figure = (
        f"full/1000,: {view.status or 'timeout'} in {fmt_s(view.seconds)}; "
        f"a tile: {tile.status or 'timeout'} {tile_size or ''}"
    ).strip()
    out.target = "full/1000,: a 4xx in < 1 s; tiles still served"
    out.passed = 400 <= view.status < 500 and view.seconds < 1 and tile_size == (256, 256)
    out.details = {
        "view_status": view.status,
        "view_seconds": round(view.seconds, 3),
        "view_body": view.body[:200].decode(errors="replace") if view.status != 200 else "",
        "tile_status": tile.status,
        "tile_size": tile_size,
    }


def encoder_limit(ctx: Context, target: Target, out: Outcome) -> None:
    """A size the format cannot encode is the client's request, not a broken file: 400 before any
    work. ``max`` is what the server can make, so it is capped by the encoder's limit, never refused."""
    explicit = f"{WIDE}/0,0,20000,256/20000,/0/default.webp"
    capped = f"{WIDE}/0,0,20000,256/max/0/default.webp"
    refused = get(target, explicit, timeout=ctx.cap)
    made = get(target, capped, timeout=ctx.cap)
    text = refused.body[:120].decode(errors="replace").strip() if refused.status != 200 else ""
    size = size_of(made.body) if made.status == 200 else None
    out.figure = (
        f"20000,: {refused.status or 'timeout'} in {fmt_s(refused.seconds)}"
        + (f" ({text})" if text else "")
        + f"; max: {made.status or 'timeout'} in {fmt_s(made.seconds)}"
        + (f", {size[0]}×{size[1]}" if size else "")
    )
    out.target = "20000,: 400 before rendering (not 422); max: 200, capped at WebP's 16383 px"
    out.passed = refused.status == 400 and refused.seconds < 1 and size is not None and size[0] <= WEBP_MAX_SIDE
    out.details = {
        "explicit": explicit,
        "explicit_status": refused.status,
        "body": text,
        "seconds": refused.seconds,
        "max": capped,
        "max_status": made.status,
        "max_size": size,
    }


def protocol(ctx: Context, target: Target, out: Outcome) -> None:
    host = f"Host: {HOST}\r\n"
    cases = {
        "bad request line": (b"GARBAGE\r\n\r\n", {400}),
        "20 KB URL": (f"GET {PREFIX}{'a' * 20000}/info.json HTTP/1.1\r\n{host}\r\n".encode(), {414}),
        "64 KB of headers": (
            f"GET {PREFIX}{SMALL}/info.json HTTP/1.1\r\n{host}".encode()
            + b"".join(f"X-Pad-{i}: {'a' * 1000}\r\n".encode() for i in range(64))
            + b"\r\n",
            {431},
        ),
    }
    parts, good, details = [], True, {}
    for name, (payload, expected) in cases.items():
        answer = raw(target, payload, timeout=10)
        ctype = answer.headers.get("content-type", "")
        cors = answer.headers.get("access-control-allow-origin", "")
        ok = answer.status in expected and ctype.startswith("text/plain") and cors == "*"
        good = good and ok
        parts.append(f"{name}: {answer.status or answer.error} {ctype.split(';')[0] or '-'} CORS {cors or '-'}")
        details[name] = {"status": answer.status, "content_type": ctype, "cors": cors, "error": answer.error}
    out.figure = "; ".join(parts)
    out.target = "400 / 414 / 431, one-line text/plain, CORS *"
    out.passed = good
    out.details = details


FUZZ_QUICK, FUZZ_FULL = 120, 600
#: Seconds a fuzzed request may take before it counts as unanswered (a few are valid renders of small.tif).
FUZZ_TIMEOUT = 30.0
#: The first VALID values of each list are well-formed (for small.tif: cheap to render); the rest are not.
VALID = 4
FUZZ_PIECES = {
    "region": [
        "full",
        "square",
        "0,0,10,10",
        "pct:0,0,50,50",
        "-1,0,10,10",
        "0,0,0,0",
        "99999999999999999999,0,1,1",
        "pct:1e309,0,1,1",
        "pct:nan,0,1,1",
        "١,٢,٣,٤",
        "0,0,10",
        "0,,10,10",
        "pct:",
        "pct:-5,0,5,5",
        "0x10,0,1,1",
        "1.5,0,10,10",
        " 0,0,1,1",
        "0,0,10,10,10",
    ],
    "size": [
        "max",
        "100,",
        ",100",
        "pct:50",
        "^max",
        "!100,100",
        "^!100,100",
        "0,",
        "-5,",
        "^pct:100000",
        "pct:1e309",
        "99999999999,",
        "1e3,",
        "^,",
        "!,100",
        "max,",
        "^100",
        "pct:nan",
        "100,100,100",
        "",
    ],
    "rotation": ["0", "90", "!0", "45", "360", "361", "-90", "1e309", "nan", "0.0000001", "!", "!!90", "90.5.5", ""],
    "quality": ["default", "color", "gray", "bitonal", "grey", "DEFAULT", "", "default.default", "..", "default%00"],
    "format": ["jpg", "png", "webp", "gif", "tif", "jp2", "pdf", "JPG", "", "jpg.png", "jpg%00", "exe"],
}
TRAVERSALS = [
    f"..%2Foutside%2F{SECRET}",
    f"..%2F..%2Fattack%2Foutside%2F{SECRET}",
    f"%2E%2E%2Foutside%2F{SECRET}",
    f"%252E%252E%252Foutside%252F{SECRET}",
    f"..%5Coutside%5C{SECRET}",
    f"{SMALL}%2F..%2F..%2Foutside%2F{SECRET}",
    f"....%2F%2Foutside%2F{SECRET}",
    f"..%c0%afoutside%c0%af{SECRET}",
    f"%00..%2Foutside%2F{SECRET}",
    "link.tif",
    "link",
    "%2Fetc%2Fpasswd",
    "..%2F..%2F..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "%2Fproc%2Fself%2Fenviron",
]


def fuzz_urls(rng: random.Random, count: int) -> list[str]:
    """Malformed IIIF URLs: each part from a list of edge cases and nonsense, sometimes with random bytes."""
    urls = []
    for _ in range(count):
        # each part valid most of the time, so that most URLs get past the parser to deeper code
        parts = [
            rng.choice(values[:VALID]) if rng.random() < 0.75 else rng.choice(values) for values in FUZZ_PIECES.values()
        ]
        if rng.random() < 0.3:  # some random bytes into one part
            index = rng.randrange(len(parts))
            junk = "".join(rng.choice("%/\\.;:?#&=~^!,-+*'\"<>{}[]|`$@ \t\x00éđ") for _ in range(rng.randint(1, 6)))
            parts[index] += junk
        identifier = rng.choice([SMALL, SMALL, SMALL, "nothing.tif", "%2F", "%", "..", SMALL + "%2F" + SMALL])
        urls.append(f"{identifier}/{parts[0]}/{parts[1]}/{parts[2]}/{parts[3]}.{parts[4]}")
    return urls


def quote_path(path: str) -> str:
    """Percent-encode what may not appear raw in a request line (spaces, controls, non-ASCII); keep the rest."""
    return "".join(
        c if 0x21 <= ord(c) < 0x7F and c not in "#?" else "".join(f"%{b:02X}" for b in c.encode()) for c in path
    )


def fuzz(ctx: Context, target: Target, out: Outcome) -> None:
    rng = random.Random(ctx.seed)
    urls = fuzz_urls(rng, FUZZ_QUICK if ctx.quick else FUZZ_FULL)
    statuses: dict[int, int] = {}
    bad: list[dict[str, Any]] = []
    deadline = time.monotonic() + (40 if ctx.quick else 120)
    asked = 0
    for url in urls:
        if time.monotonic() > deadline:
            break
        answer = get(target, "", timeout=FUZZ_TIMEOUT, path=PREFIX + quote_path(url))
        asked += 1
        statuses[answer.status] = statuses.get(answer.status, 0) + 1
        if answer.status >= 500 or answer.status == 0:
            bad.append({"url": url, "status": answer.status, "body": answer.body[:120].decode(errors="replace")})
    leaked = 0
    traversal: dict[str, int] = {}
    marker = b"root:x:0:0"
    for identifier in TRAVERSALS:
        for tail_ in ("info.json", "full/max/0/default.png"):
            answer = get(target, "", timeout=10, path=f"{PREFIX}{identifier}/{tail_}")
            traversal[f"{identifier}/{tail_}"] = answer.status
            if answer.status == 200 or marker in answer.body:
                leaked += len(answer.body)
    raw_dots = raw(target, f"GET {PREFIX}../../outside/{SECRET}/info.json HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
    traversal[f"(raw) ../../outside/{SECRET}/info.json"] = raw_dots.status
    if raw_dots.status == 200:
        leaked += len(raw_dots.body)
    errors = sum(1 for item in bad if item["status"] >= 500)
    hung = sum(1 for item in bad if item["status"] == 0)
    out.figure = (
        f"{asked} fuzzed URLs: {errors} answered ≥ 500, {hung} no answer in {FUZZ_TIMEOUT:.0f} s; "
        f"{len(traversal)} traversals: {leaked} bytes from outside the root"
    )
    out.target = "0 answers ≥ 500, all answered; 0 bytes outside the root"
    out.passed = asked == len(urls) and errors == 0 and hung == 0 and leaked == 0
    out.details = {
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "bad": bad[:20],
        "traversal_statuses": traversal,
        "leaked_bytes": leaked,
    }


def admin(ctx: Context, target: Target, out: Outcome) -> None:
    statuses = []
    stop_at = time.monotonic() + 60
    for attempt in range(ADMIN_TRIES):
        if time.monotonic() > stop_at:
            break
        answer = get(
            target,
            "",
            timeout=10,
            method="POST",
            path="/admin/cache/purge",
            headers={"Authorization": f"Bearer wrong-{attempt}-{secrets.token_hex(4)}"},
        )
        statuses.append(answer.status)
    before_throttle = statuses.index(429) if 429 in statuses else len(statuses)
    answered_401 = statuses[:before_throttle].count(401)
    counts = {str(s): statuses.count(s) for s in sorted(set(statuses))}
    out.figure = (
        f"{answered_401} × 401 before throttling; "
        + (f"first 429 at try {before_throttle + 1}" if 429 in statuses else "never throttled")
        + f" ({', '.join(f'{v}×{k}' for k, v in counts.items())})"
    )
    # each worker counts an address's failures itself: at most [admin] max_failures per worker get through
    from iiif_server.config import Settings

    free = Settings().admin.max_failures * len(target.workers())
    out.target = f"429 after ≤ {free} wrong tokens ([admin] max_failures × workers)"
    out.passed = 429 in statuses and answered_401 <= free
    out.details = {"statuses": statuses}


def _heavy_clients(port: int, seconds: float, timeout: float, seed: int, conn: Any) -> None:
    """HEAVY_CLIENTS threads asking distinct uncached renders for ``seconds`` (run in a process of its own).

    In a spawned process so that 32 client threads do not hold this process's GIL while the normal
    clients' latencies are timed here. Sends ``"started"``, then one list of (url, status, seconds,
    Retry-After, error) when every client has stopped (each request bounded by ``timeout``).
    """
    target = Target(port, None, Path())  # type: ignore[arg-type]  # only .port is used by get()
    rng = random.Random(seed)
    asked: set[str] = set()
    lock = threading.Lock()
    records: list[tuple[str, int, float, str | None, str]] = []
    conn.send("started")
    stop_at = time.monotonic() + seconds

    def next_url() -> str:
        with lock:
            while True:
                image = rng.choice((MID, WIDE))
                url = f"{image}/full/{rng.randint(*HEAVY_WIDTHS)},/0/default.{rng.choice(HEAVY_FORMATS)}"
                if url not in asked:  # distinct: never a cache hit, never shared with another client
                    asked.add(url)
                    return url

    def client() -> None:
        while time.monotonic() < stop_at:
            url = next_url()
            answer = get(target, url, timeout=timeout)
            with lock:
                records.append((url, answer.status, answer.seconds, answer.headers.get("retry-after"), answer.error))

    concurrently([client] * HEAVY_CLIENTS, seconds + timeout + 5)
    with lock:
        conn.send(list(records))
    conn.close()


def _idle_warm_worker_mb(ctx: Context, target: Target, out: Outcome) -> float:
    """Warm every worker with normal traffic (unloaded baseline if scenario 1 did not run); the largest RSS then."""
    if ctx.baseline_p99_ms is None:
        ctx.urls = warm(target)
        load = normal_load(target, ctx.urls, ctx.duration, 5.0, ctx.seed)
        ctx.baseline_p99_ms = load.p99_ms
        out.details["baseline"] = load.summary()
    else:
        normal_load(target, ctx.urls or warm(target), 1.0, 5.0, ctx.seed + 2)  # every worker touched again
    _settled_cpu(target, target.cpu(), 10)
    return max(target.rss_mb().values(), default=0.0)


def heavy_budget_mb(workers: int, base_mb: float) -> tuple[float, str]:
    """Peak RSS the server's defaults allow all workers under heavy load, and how it is made up."""
    from iiif_server.config import Settings

    settings = Settings()
    cache, lanes, images = settings.cache, settings.lanes, settings.images
    per = (
        cache.memory_mb
        + cache.replay_mb
        + cache.decoded_levels_mb
        + lanes.heavy_concurrency * images.max_request_mb
        + base_mb
    )
    how = (
        f"{workers} × ({cache.memory_mb} memory + {cache.replay_mb} replay + {cache.decoded_levels_mb} levels "
        f"+ {lanes.heavy_concurrency} × {images.max_request_mb} request + {base_mb:.0f} idle worker)"
    )
    return workers * per, how


def heavy(ctx: Context, target: Target, out: Outcome) -> None:
    from iiif_server.config import Settings

    settings = Settings()
    base_mb = _idle_warm_worker_mb(ctx, target, out)
    workers = len(target.workers())
    budget, how = heavy_budget_mb(workers, base_mb)
    measured_s = 6.0 if ctx.quick else 20.0
    # the server's own bound on a heavy request, --quick too: a slow answer within it is no failure
    timeout = settings.server.render_timeout + settings.lanes.heavy_wait + RENDER_SLACK
    spawn = multiprocessing.get_context("spawn")
    mine, theirs = spawn.Pipe()
    clients = spawn.Process(
        target=_heavy_clients,
        args=(target.port, HEAVY_RAMP_S + measured_s + 1, timeout, ctx.seed, theirs),
        daemon=True,
    )
    records: list[tuple[str, int, float, str | None, str]] = []
    with Sampler(target) as sampler:
        clients.start()
        try:
            if not mine.poll(30):
                raise RuntimeError("the heavy clients' process did not start within 30 s")
            mine.recv()
            time.sleep(HEAVY_RAMP_S)
            load = normal_load(target, ctx.urls or normal_urls(), measured_s, 5.0, ctx.seed + 3)
            if mine.poll(HEAVY_RAMP_S + timeout + 15):
                records = mine.recv()
        finally:
            clients.join(5)
            if clients.is_alive():
                clients.kill()
                clients.join(5)
    statuses: dict[int, int] = {}
    for _url, status, _s, _retry, _err in records:
        statuses[status] = statuses.get(status, 0) + 1
    refused = [r for r in records if r[1] == 503]
    without_retry = sum(1 for r in refused if not (r[3] or "").isdigit())
    errors = sum(n for status, n in statuses.items() if status >= 500 and status != 503)
    unanswered = statuses.get(0, 0)
    rendered = [r[2] for r in records if r[1] == 200]
    limit = P99_FACTOR * ctx.baseline_p99_ms if ctx.baseline_p99_ms else 0.0
    counts = ", ".join(f"{n}×{status or 'none'}" for status, n in sorted(statuses.items()))
    out.figure = (
        f"normal p99 {load.p99_ms:.1f} ms ({load.errors} errors of {len(load.latencies)}); heavy: {counts}"
        + (f", {without_retry} 503 without Retry-After" if without_retry else "")
        + f"; peak RSS {sampler.peak_total:.0f} MB of {budget:.0f} MB budget"
    )
    out.target = (
        f"p99 ≤ {limit:.1f} ms ({P99_FACTOR:g}× unloaded), no errors; heavy: 200 or 503 + Retry-After, "
        f"all answered; peak RSS ≤ {how}"
    )
    out.passed = (
        bool(records)
        and 0 < load.p99_ms <= limit
        and load.errors == 0
        and without_retry == 0
        and errors == 0
        and unanswered == 0
        and bool(rendered)
        and sampler.peak_total <= budget
    )
    out.details.update(
        {
            "load": load.summary(),
            "baseline_p99_ms": round(ctx.baseline_p99_ms or 0.0, 2),
            "heavy_statuses": {str(k): v for k, v in sorted(statuses.items())},
            "heavy_requests": len(records),
            "heavy_per_s": round(len(records) / (HEAVY_RAMP_S + measured_s + 1), 1),
            "heavy_200_seconds_p50_p99": [round(pct(rendered, 50), 2), round(pct(rendered, 99), 2)],
            "retry_after_values": sorted({r[3] for r in refused if r[3]}),
            "503_without_retry_after": without_retry,
            "heavy_errors": sorted({r[4] for r in records if r[4]}),
            "heavy_bodies_5xx": sorted({r[0] for r in records if r[1] >= 500 and r[1] != 503})[:10],
            "workers": workers,
            "idle_warm_worker_mb": round(base_mb),
            "rss_before_mb": {str(k): round(v) for k, v in sampler.before.items()},
            "rss_peak_mb": {str(k): round(v) for k, v in sampler.peak.items()},
            "rss_peak_total_mb": round(sampler.peak_total),
            "budget_mb": round(budget),
            "budget": how,
        }
    )


def bomb(ctx: Context, target: Target, out: Outcome) -> None:
    """info.json, full/max and the bottom-right tile of each hostile file; then a normal request."""
    log_before = len(target.log.read_text(errors="replace")) if target.log.exists() else 0
    rows: dict[str, list[dict[str, Any]]] = {}
    slowest, worst_gain, good = 0.0, 0.0, True
    for name in BOMBS:
        info = get(target, f"{name}/info.json", timeout=BOMB_TIMEOUT)
        width, height = BOMB_SOURCE_SIZE
        with contextlib.suppress(ValueError, KeyError, TypeError):
            width, height = int(json.loads(info.body)["width"]), int(json.loads(info.body)["height"])
        x, y = max(0, width - 512), max(0, height - 512)
        asked = [("info.json", info)]
        with Sampler(target) as sampler:
            for what, tail_ in (
                ("full/max", "full/max/0/default.jpg"),
                ("tile", f"{x},{y},512,512/512,/0/default.jpg"),
            ):
                asked.append((what, get(target, f"{name}/{tail_}", timeout=BOMB_TIMEOUT)))
        worst_gain = max(worst_gain, sampler.worst_gain())
        rows[name] = []
        for what, answer in asked:
            refused = answer.status == 503 and (answer.headers.get("retry-after") or "").isdigit()
            ok = answer.seconds < BOMB_TARGET_S and (
                refused or (400 <= answer.status < 500) or (what == "info.json" and answer.status == 200)
            )
            good = good and ok
            slowest = max(slowest, answer.seconds)
            rows[name].append(
                {
                    "request": what,
                    "status": answer.status,
                    "seconds": round(answer.seconds, 3),
                    "ok": ok,
                    "body": answer.body[:160].decode(errors="replace").strip() if answer.status != 200 else "",
                    "error": answer.error,
                }
            )
        rows[name].append({"request": "worker RSS gain (MB)", "value": round(sampler.worst_gain(), 1)})
    after_info = get(target, f"{SMALL}/info.json", timeout=10)
    after_tile = get(target, f"{SMALL}/0,0,512,512/512,/0/default.jpg", timeout=10)
    still = after_info.status == 200 and size_of(after_tile.body) == (512, 512)
    log = target.log.read_text(errors="replace")[log_before:] if target.log.exists() else ""
    tracebacks = log.count("Traceback")
    out.figure = "; ".join(
        f"{name}: " + ",".join(f"{r['status'] or 'timeout'}" for r in found if "status" in r)
        for name, found in rows.items()
    ) + (
        f"; slowest {fmt_s(slowest)}; worst worker +{worst_gain:.0f} MB; afterwards "
        + ("served" if still else f"NOT served ({after_info.status}, {after_tile.status})")
        + (f"; {tracebacks} tracebacks logged" if tracebacks else "")
    )
    out.target = (
        f"info.json 200 or 4xx, full/max and tile 4xx (422 broken) or 503 + Retry-After, never 5xx; "
        f"each < {BOMB_TARGET_S:g} s; a worker gains < {BOMB_RSS_MB} MB; normal requests served after"
    )
    out.passed = good and worst_gain < BOMB_RSS_MB and still
    out.details = {
        "files": BOMBS,
        "answers": rows,
        "worst_worker_gain_mb": round(worst_gain, 1),
        "after": {"info_status": after_info.status, "tile_status": after_tile.status},
        "tracebacks_logged": tracebacks,
    }


@dataclass(frozen=True)
class Scenario:
    number: int
    name: str
    measured: str
    run: Callable[[Context, Target, Outcome], None]
    needs: tuple[str, ...] = ()
    #: Which server it runs on: "main" (defaults plus an admin token) or "flight" (Redis when it answers, a short wait).
    server: str = "main"


SCENARIOS = (
    Scenario(1, "baseline", "normal requests (cached tiles + info.json), 2 clients, unloaded", baseline, (MID,)),
    Scenario(
        2,
        "slowloris",
        f"normal p99 while {ATTACK_SOCKETS} sockets send a byte of a request line every "
        f"{SLOWLORIS_INTERVAL:g} s; slow sockets the server closed",
        slowloris,
        (MID,),
    ),
    Scenario(
        3,
        "idle",
        f"normal p99 while {ATTACK_SOCKETS} connections sit idle (half after one answer, half never sent a byte)",
        idle,
        (MID,),
    ),
    Scenario(
        4, "gif", "4 × full/^10000,10000/0/default.gif of 8000×6000 at once: status, time, worker RSS", gif, (MID,)
    ),
    Scenario(5, "rotation", "full/^10000,10000/45/default.jpg of 8000×6000: status, output pixels", rotation, (MID,)),
    Scenario(6, "head", "HEAD full/^max/0/default.jpg of 20000×4800: wall time", head, (WIDE,)),
    Scenario(
        7, "flight", "4 identical concurrent slow renders (PNG): worker CPU vs one", flight, (MID,), server="flight"
    ),
    Scenario(
        8, "disconnect", "8 clients leave slow renders (PNG) after 0.2 s: worker CPU afterwards", disconnect, (MID,)
    ),
    Scenario(
        9,
        "misses",
        f"random missing ids in a folder of {MANY_FILES:,} files: one miss; 8 clients (wrk)",
        misses,
        (MANY,),
    ),
    Scenario(
        10, "flat-tiff", f"full/1000, of a {FLAT_SIDE}² tiled TIFF without pyramid: status, time", flat_tiff, (FLAT,)
    ),
    Scenario(
        11,
        "encoder-limit",
        "0,0,20000,256/20000,/0/default.webp and …/max/…: status, size",
        encoder_limit,
        (WIDE,),
    ),
    Scenario(12, "protocol", "bad request line, 20 KB URL, 64 KB of headers: status, type, CORS", protocol),
    Scenario(13, "fuzz", "random malformed IIIF URLs; path traversal attempts", fuzz),
    Scenario(14, "admin", f"{ADMIN_TRIES} wrong admin tokens: 401s before throttling (429)", admin),
    Scenario(
        15,
        "heavy",
        f"normal p99 while {HEAVY_CLIENTS} clients loop distinct uncached full/w, renders "
        f"(w {HEAVY_WIDTHS[0]}–{HEAVY_WIDTHS[1]}, mid and wide, jpg/png); heavy statuses; peak RSS of all workers",
        heavy,
        (MID, WIDE),
    ),
    Scenario(
        16,
        "bomb",
        "info.json, full/max, bottom-right tile of: " + "; ".join(f"{k} ({v})" for k, v in BOMBS.items()),
        bomb,
        (BOMB_PNG,),
    ),
)


# ---------------------------------------------------------------- running it all


def redis_answers() -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, 6379), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")
    return False


def server_env(kind: str, token: str, run_id: str, settings: Sequence[str] = ()) -> tuple[dict[str, str], str]:
    """Defaults (no config file, no IIIF_SERVER_* of ours) plus what the group needs and the ``--set``
    settings (``section.key=value``); and a note saying so."""
    env, _dropped = our_env()
    env["IIIF_SERVER_ADMIN_TOKEN"] = token  # enables the endpoint scenario 14 probes; nothing else changes
    note = "defaults; [admin] token set"
    for setting in settings:
        name, _, value = setting.partition("=")
        section, _, key = name.partition(".")
        env[f"IIIF_SERVER_{section.upper()}_{key.upper()}"] = value
        note += f", [{section}] {key} = {value}"
    if kind == "flight":
        # With Redis, single flight spans the workers (else it is per worker only).
        note = "defaults"
        if redis_answers():
            env["IIIF_SERVER_CACHE_REDIS_URL"] = "redis://127.0.0.1:6379/0"
            env["IIIF_SERVER_CACHE_REDIS_PREFIX"] = f"attack-{run_id}:"
            env["IIIF_SERVER_CACHE_REDIS_TTL"] = "600"
            note += ", Redis at 127.0.0.1:6379 (own key prefix, 10-min TTL)"
        else:
            note += ", no Redis (none answers at 127.0.0.1:6379): single flight per worker only"
    return env, note


def run_one(ctx: Context, scenario: Scenario, server: Server, watchdog: float) -> Outcome:
    out = Outcome(scenario.number, scenario.name, scenario.measured)
    started = time.monotonic()
    try:
        target, state = server.ready(10 if ctx.quick else 30)
    except RuntimeError as err:
        out.figure, out.passed = f"server did not start: {str(err).splitlines()[0]}", False
        return out
    out.server = state
    failure: list[BaseException] = []

    def body() -> None:
        try:
            scenario.run(ctx, target, out)
        except Exception as err:  # a scenario's own bug or the server's misbehaviour: report, go on
            failure.append(err)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(watchdog)
    if thread.is_alive():
        out.figure, out.passed = f"timeout: scenario still running after {watchdog:.0f} s", False
        server.restart()  # ends whatever the server is stuck in; the scenario's sockets then fail fast
    elif failure:
        out.figure, out.passed = f"error: {type(failure[0]).__name__}: {failure[0]}", False
    out.seconds = time.monotonic() - started
    return out


def table(outcomes: Sequence[Outcome]) -> str:
    lines = ["| # | scenario | measured | figure | target | result |", "|---:|---|---|---|---|---|"]
    for o in outcomes:
        verdict = "—" if o.passed is None else ("pass" if o.passed else "**FAIL**")
        cells = [str(o.number), o.name, o.measured, o.figure, o.target, verdict]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    names = [s.name for s in SCENARIOS]
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter loads and caps: about 2 minutes")
    parser.add_argument("--only", help=f"comma-separated scenarios (names or numbers) from: {', '.join(names)}")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="where the synthetic images live")
    parser.add_argument("--json", type=Path, help="JSON output (default bench/results/attack-<time>.json)")
    parser.add_argument(
        "--worker", choices=("asgi", "gthread"), help="the server's [server] worker (default: its own default)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a server setting, e.g. server.thread_nice=0 (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    if args.worker:
        args.set.append(f"server.worker={args.worker}")
    for setting in args.set:
        if not re.fullmatch(r"[a-z_]+\.[a-z_]+=.*", setting):
            parser.error(f"--set {setting!r}: expected SECTION.KEY=VALUE")
    if args.only:
        wanted = set(args.only.split(","))
        known = set(names) | {str(s.number) for s in SCENARIOS}
        if wanted - known:
            parser.error(f"unknown scenario(s) {', '.join(sorted(wanted - known))}; choose from {', '.join(names)}")
    return args


def chosen(args: argparse.Namespace) -> list[Scenario]:
    if not args.only:
        return list(SCENARIOS)
    wanted = set(args.only.split(","))
    return [s for s in SCENARIOS if s.name in wanted or str(s.number) in wanted]


@contextlib.contextmanager
def servers(
    workdir: Path, root: Path, token: str, run_id: str, settings: Sequence[str]
) -> Iterator[dict[str, tuple[Server, str]]]:
    made: dict[str, tuple[Server, str]] = {}
    try:
        for kind in ("main", "flight"):
            env, note = server_env(kind, token, run_id, settings)
            made[kind] = (Server(workdir, root, env, kind), note)
        yield made
    finally:
        for server, _ in made.values():
            server.stop()


def attack(args: argparse.Namespace) -> int:
    scenarios = chosen(args)
    limit = raise_fd_limit(ATTACK_SOCKETS * 2 + 256)
    needs = {need for s in scenarios for need in s.needs}
    root = ensure_images(args.images.resolve(), needs)
    run_id = secrets.token_hex(4)
    token = secrets.token_hex(16)
    started = time.monotonic()
    outcomes: list[Outcome] = []
    with (
        tempfile.TemporaryDirectory(prefix="iiif-attack-") as tmp,
        servers(Path(tmp), root, token, run_id, args.set) as made,
    ):
        ctx = Context(made["main"][0], args.quick, args.seed)
        for scenario in scenarios:
            server, _note = made[scenario.server]
            if scenario.server == "flight":
                made["main"][0].stop()  # one server at a time: the other's workers would share the cores
            elif made["flight"][0].target is not None:
                made["flight"][0].stop()
            print(f"  {scenario.number:2}. {scenario.name} ...", flush=True)
            watchdog = (90 if args.quick else 180) + (60 if scenario.name in ("slowloris", "idle") else 0)
            outcome = run_one(ctx, scenario, server, watchdog)
            print(f"      {outcome.figure}", flush=True)
            outcomes.append(outcome)
        notes = {kind: note for kind, (_, note) in made.items() if any(s.server == kind for s in scenarios)}
        restarts = {kind: server.restarts for kind, (server, _) in made.items()}
    elapsed = time.monotonic() - started
    info = describe(REPO, Path(sys.executable))
    head_lines = [
        f"# Attack probe {'(quick) ' if args.quick else ''}— {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"- commit {info['commit']}, libvips {info['libvips']}, Python {info['python']}, {info['cores']} cores "
        f"({info['cpu']}), load before {', '.join(f'{v:.1f}' for v in info['load_before'])}",
        "- server: `iiif-server serve` on 127.0.0.1, "
        + "; ".join(f"{kind}: {note}" for kind, note in notes.items())
        + f"; restarts {restarts}",
        f"- open-files limit {limit}; took {elapsed:.0f} s",
    ]
    report = "\n".join(head_lines) + "\n\n" + table(outcomes) + "\n"
    print("\n" + report)
    path = args.json or RESULTS / f"attack-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "machine": info,
                "quick": args.quick,
                "servers": notes,
                "restarts": restarts,
                "seconds": round(elapsed, 1),
                "scenarios": [asdict(o) for o in outcomes],
            },
            indent=2,
            default=str,
        )
    )
    print(f"written to {path}")
    return 0 if all(o.passed is not False for o in outcomes) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    become_subreaper()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_exit)
    try:
        return attack(args)
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
