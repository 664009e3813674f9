"""Side-by-side benchmark: our IIIF server against iipsrv 1.3, on the same images, machine and load.

One command (see bench/README.md)::

    IIPSRV=/path/to/iipsrv.fcgi .venv/bin/python bench/run.py [--duration S] [--quick] [--only S[,S]] \
        [--our-workers N] [--iipsrv PATH|debian] [--peer-version LABEL]

It builds the photo-like pyramidal TIFFs if missing, starts iipsrv (the binary bench/build-iipsrv.sh builds
from github.com/ruven/iipsrv; 4 FastCGI processes behind lighttpd) and our server (its CLI, default settings),
checks that both answer every benchmarked URL form correctly, then runs the scenarios on both, alternating
which goes first so drift (thermal, noisy neighbours) hits both. Uncached renders are measured with distinct
sizes and their quality compared by SSIM against a Lanczos reference. It prints Markdown tables, with the
issue-10 targets, and writes them to bench/results/.

Both servers are black boxes reached over HTTP on 127.0.0.1 only. Every process started here runs in its own
process group and is stopped on exit, Ctrl-C, SIGTERM or error.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyvips
from synth_images import build as build_image

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
IMAGES = BENCH / "images"
RESULTS = BENCH / "results"
TILES_LUA = BENCH / "random_tiles.lua"
HOST = "127.0.0.1"
INSTALL_HINT = "apt-get update && apt-get install -y lighttpd wrk"
BUILD_HINT = (
    "build iipsrv 1.3 with:\n  bench/build-iipsrv.sh    # clones github.com/ruven/iipsrv into ~/.cache/iipsrv-build\n"
    "then pass the path it prints: --iipsrv PATH or IIPSRV=PATH (or --iipsrv debian for Debian's 1.1)"
)
WRK_THREADS = 2
#: wrk's default 2 s timeout would turn slow-but-correct full/max responses into "errors".
WRK_TIMEOUT_S = 30
TILE = 256
#: Share of the machine used by other processes during a run above which the run is flagged.
FOREIGN_CPU_WARN = 0.05

# iipsrv settings, as measured in PERFORMANCE.md. Its own cache default is 10 MB: set 64 explicitly.
IIPSRV_PROCS = 4
IIPSRV_CACHE_MB = 64
#: Same output quality as our server's default (config.toml [output] jpeg_quality), so bytes are comparable.
IIPSRV_JPEG_QUALITY = 85
#: Default 5000 refuses full/max of anything wider; the 20k image must fit too.
IIPSRV_MAX_CVT = 30000


@dataclass(frozen=True)
class Picture:
    """A benchmark image: file name (= IIIF identifier on both servers), size, and synthesis seed."""

    name: str
    width: int
    height: int
    seed: int


BIG = Picture("photo-20000x15000.tif", 20000, 15000, 1)
SMALL = Picture("photo-6000x4000.tif", 6000, 4000, 2)
PICTURES = (BIG, SMALL)


@dataclass(frozen=True)
class Server:
    """A running server as the client sees it: where it is and how its Image API URLs start."""

    name: str
    base: str
    prefix: str

    def url(self, picture: Picture, tail: str) -> str:
        """Absolute URL of ``tail`` (region/size/rotation/quality.format or info.json) for ``picture``."""
        return f"{self.base}{self.prefix}{picture.name}/{tail}"


@dataclass(frozen=True)
class Scenario:
    """One load: a fixed URL tail (wrk), random tiles over all zoom levels when ``tail`` is None (wrk), or,
    when ``distinct``, ``tail`` with ``{w}`` filled in by a new width for every request (our own client)."""

    name: str
    label: str
    connections: int
    picture: Picture
    tail: str | None = None
    expect_size: tuple[int, int] | None = None
    quick: bool = False
    distinct: bool = False


#: Uncached renders: widths FIRST_DISTINCT_WIDTH, one less, ... each asked once per server, so neither a
#: derivative cache (ours) nor anything else can answer from memory. Warm-up asks widths above it, the
#: preflight PREFLIGHT_WIDTH: none of them is in the measured set.
DISTINCT_TAIL = "full/{w},/0/default.jpg"
FIRST_DISTINCT_WIDTH = 1024
#: Distinct widths asked per second of --duration, at most MAX_DISTINCT (so the widths stay >= 513 px).
DISTINCT_PER_SECOND = 32
MAX_DISTINCT = 512
PREFLIGHT_WIDTH = 1280
#: Widths whose outputs are compared with a Lanczos reference (1024: the issue's target; 777: an awkward scale).
SSIM_WIDTHS = (1024, 777)

SCENARIOS = (
    Scenario("tiles-c4", "random tiles, 20k, c=4", 4, BIG),
    Scenario("tiles-c16", "random tiles, 20k, c=16", 16, BIG, quick=True),
    Scenario("tiles-c64", "random tiles, 20k, c=64", 64, BIG, quick=True),
    Scenario("hot-tile", "one hot tile, c=16", 16, BIG, "10240,7680,256,256/256,256/0/default.jpg", (256, 256), True),
    Scenario("info", "info.json, c=16", 16, BIG, "info.json", quick=True),
    Scenario("full-1024", "full/1024, of 20k, same URL, c=16", 16, BIG, "full/1024,/0/default.jpg", (1024, 768)),
    # c=4: as many renders in flight as iipsrv has processes, enough to keep both cores busy.
    Scenario(
        "full-distinct",
        "full/w, of 20k, uncached (w = 1024, 1023, …), c=4",
        4,
        BIG,
        DISTINCT_TAIL,
        (PREFLIGHT_WIDTH, PREFLIGHT_WIDTH * BIG.height // BIG.width),
        quick=True,
        distinct=True,
    ),
    # iipsrv 1.1 (Image API 2.0) answers "max" with the whole image too: the preflight checks the decoded size.
    Scenario("full-max-6k", "full/max of 6k, c=16", 16, SMALL, "full/max/0/default.jpg", (6000, 4000)),
)


@dataclass(frozen=True)
class Target:
    """An issue-10 goal: ours/iipsrv req/s at least ``ratio``, or ours' p99 at most ``p99_ms``."""

    scenario: str
    what: str
    ratio: float | None = None
    p99_ms: float | None = None


TARGETS = (
    Target("info", "info.json", ratio=1.5),
    Target("hot-tile", "one hot tile", ratio=1.5),
    Target("tiles-c16", "random tiles, c=16", ratio=1.5),
    Target("tiles-c64", "p99 of random tiles, c=64", p99_ms=25),
    Target("full-distinct", "uncached full/w, (distinct sizes)", ratio=1.2),
)


@dataclass
class WrkResult:
    """What one wrk run reports. Errors: 4xx/5xx responses (wrk's "Non-2xx or 3xx") and socket errors."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    bytes_read: float
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    #: Share of the machine's CPU used during the run by processes that are neither wrk nor the servers.
    foreign_cpu: float = 0.0

    @classmethod
    def from_latencies(cls, latencies_ms: Sequence[float], seconds: float, bytes_read: float) -> WrkResult:
        """Rate and nearest-rank percentiles of requests timed one by one (our own client)."""
        ordered = sorted(latencies_ms) or [0.0]

        def pct(q: float) -> float:
            return ordered[max(0, math.ceil(len(ordered) * q / 100) - 1)]

        return cls(len(latencies_ms) / max(seconds, 1e-9), pct(50), pct(99), len(latencies_ms), bytes_read)

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())

    def error_text(self) -> str:
        parts = [f"{self.non_2xx} non-2xx"] if self.non_2xx else []
        parts += [f"{count} {kind}" for kind, count in self.socket_errors.items() if count]
        return ", ".join(parts)


# ---------------------------------------------------------------- processes


def become_subreaper() -> None:
    """Adopt orphaned descendants so they can be reaped here.

    lighttpd exits without waiting for its FastCGI children; they would otherwise linger as zombies of an
    init that may never reap them (as in these sandboxes), and look like leftovers in ``ps``.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _raise_exit(signum: int, _frame: object) -> None:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt, so every ``finally`` stops its servers as on Ctrl-C."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def start(
    cmd: Sequence[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    """Start ``cmd`` in a new session (its own process group) so it and its children can be stopped together."""
    with log.open("wb") as out:
        return subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )


def _group_alive(pgid: int) -> bool:
    """Reap what of the group has become our child, then say whether any process of it remains."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-pgid, os.WNOHANG)[0]:
            pass
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(proc: subprocess.Popen, name: str) -> None:
    """SIGTERM the whole process group, SIGKILL what is left after a grace period, and reap it all."""
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            print(f"warning: processes of {name} (group {pgid}) still present after SIGKILL", file=sys.stderr)
            return
        if time.monotonic() > deadline - 5:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        time.sleep(0.05)


@contextlib.contextmanager
def running(
    cmd: Sequence[str], name: str, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Iterator[subprocess.Popen]:
    """A process group that lives exactly as long as the ``with`` block, whatever ends it."""
    proc = start(cmd, log, env, cwd)
    try:
        yield proc
    finally:
        stop(proc, name)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def children(pid: int) -> list[str]:
    """Command names of a process's direct children, to confirm worker counts."""
    names: list[str] = []
    with contextlib.suppress(OSError):
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            with contextlib.suppress(OSError):
                if b"resource_tracker" in Path(f"/proc/{child}/cmdline").read_bytes():
                    continue  # multiprocessing's helper (from the master's spawned start-up work)
                names.append(Path(f"/proc/{child}/comm").read_text().strip())
    return names


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of all cores busy over ``seconds``, from /proc/stat: other load skews every number here."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 1 - (idle1 - idle0) / max(total1 - total0, 1)


def cpu_ticks() -> dict[int, tuple[int, int]]:
    """Every process now: pid -> (process group, user + system clock ticks used so far)."""
    ticks: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                ticks[int(entry.name)] = (int(fields[2]), int(fields[11]) + int(fields[12]))
    return ticks


def foreign_share(before: dict[int, tuple[int, int]], seconds: float, own_groups: set[int]) -> float:
    """Share of all cores used since ``before`` by processes outside ``own_groups``.

    The machine may be shared (other people's tests and benchmarks): a run that competed with them is
    flagged rather than silently reported. Processes that ended during the run are not counted.
    """
    used = sum(
        cpu - before.get(pid, (pgid, 0))[1] for pid, (pgid, cpu) in cpu_ticks().items() if pgid not in own_groups
    )
    return used / os.sysconf("SC_CLK_TCK") / max(seconds, 1e-9) / (os.cpu_count() or 1)


def log_tail(log: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


# ---------------------------------------------------------------- prerequisites and images


@dataclass(frozen=True)
class Peer:
    """The iipsrv under test: its FastCGI binary, a short label for the tables and where it came from."""

    binary: Path
    label: str
    origin: str


def debian_iipsrv() -> Path | None:
    """The FastCGI binary of Debian's iipimage-server (1.1), located through dpkg (its path is not on PATH)."""
    try:
        listing = subprocess.run(["dpkg", "-L", "iipimage-server"], capture_output=True, text=True, check=False).stdout
    except OSError:
        listing = ""
    for line in listing.splitlines():
        if line.endswith("/iipsrv.fcgi") and os.access(line, os.X_OK):
            return Path(line)
    fallback = Path("/usr/lib/iipimage-server/iipsrv.fcgi")
    return fallback if os.access(fallback, os.X_OK) else None


def our_binary() -> Path | None:
    """``iiif-server`` from the venv running this script (not whatever is first on PATH)."""
    beside = Path(sys.executable).parent / "iiif-server"
    if beside.exists():
        return beside
    found = shutil.which("iiif-server")
    return Path(found) if found else None


def source_version(binary: Path) -> tuple[str | None, str | None]:
    """Version (configure.ac's AC_INIT) and git commit of the source tree an iipsrv.fcgi was built in, if any.

    bench/build-iipsrv.sh leaves the binary at SRC/src/iipsrv.fcgi; a binary elsewhere falls back to the
    "iipsrv/X.Y" string compiled into it (its Server header).
    """
    version = commit = None
    for folder in binary.resolve().parents[:3]:
        with contextlib.suppress(OSError):
            found = re.search(r"AC_INIT\(\[iipsrv\],\s*\[([^\]]+)\]", (folder / "configure.ac").read_text())
            if found:
                version = found.group(1)
                done = subprocess.run(
                    ["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
                )
                commit = done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None
                break
    if version is None:
        with contextlib.suppress(OSError):
            found_bytes = re.search(rb"iipsrv/(\d+\.\d+[\w.-]*)", binary.read_bytes())
            version = found_bytes.group(1).decode() if found_bytes else None
    return version, commit


def find_peer(choice: str | None, version: str | None) -> Peer:
    """iipsrv from --iipsrv / $IIPSRV (a path, or "debian" for the packaged 1.1); exit with how to build it."""
    if not choice:
        sys.exit(f"no iipsrv given (--iipsrv PATH or IIPSRV=PATH); {BUILD_HINT}")
    if choice == "debian":
        binary = debian_iipsrv()
        if binary is None:
            sys.exit("--iipsrv debian: iipimage-server is not installed (apt-get install -y iipimage-server)")
        package = _command_output(["dpkg-query", "-W", "-f", "${Version}", "iipimage-server"])
        short = version or ".".join(package.split(".")[:2])
        return Peer(binary, f"iipsrv {short}", f"Debian iipimage-server {package}")
    binary = Path(choice).expanduser()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        sys.exit(f"iipsrv binary {binary} is not an executable file; {BUILD_HINT}")
    found, commit = source_version(binary)
    origin = f"built from source{f' at {commit}' if commit else ''} ({binary.resolve()})"
    return Peer(binary, f"iipsrv {version or found or '?'}", origin)


def check_prerequisites(args: argparse.Namespace) -> tuple[Peer, Path]:
    """Exit with an install line when a tool is missing: this script installs nothing itself."""
    missing = [tool for tool in ("wrk", "lighttpd") if shutil.which(tool) is None]
    ours = our_binary()
    if ours is None:
        missing.append("iiif-server (pip install -e . in the venv running this script)")
    if missing or ours is None:
        sys.exit(f"missing prerequisites: {', '.join(missing)}\ninstall the system ones with:\n  {INSTALL_HINT}")
    return find_peer(args.iipsrv, args.peer_version), ours


def ensure_images() -> None:
    """Build whichever benchmark image is missing (once; delete bench/images/ to rebuild)."""
    for picture in PICTURES:
        path = IMAGES / picture.name
        if path.exists():
            continue
        print(f"building {path.relative_to(REPO)} ({picture.width}×{picture.height}) ...", flush=True)
        began = time.monotonic()
        build_image(path, picture.width, picture.height, picture.seed)
        print(f"  {path.stat().st_size / 1e6:.0f} MB in {time.monotonic() - began:.0f} s", flush=True)


# ---------------------------------------------------------------- servers


def lighttpd_config(workdir: Path, port: int, iipsrv: Path) -> str:
    """lighttpd in front of IIPSRV_PROCS iipsrv FastCGI processes it spawns itself (mod_fastcgi)."""
    env = {
        "MAX_IMAGE_CACHE_SIZE": str(IIPSRV_CACHE_MB),
        "MEMCACHED_SERVERS": "",  # the Debian default points at localhost memcached
        "MAX_CVT": str(IIPSRV_MAX_CVT),
        "URI_MAP": "iiif=>IIIF",
        "FILESYSTEM_PREFIX": f"{IMAGES}/",  # identifier = file name
        "JPEG_QUALITY": str(IIPSRV_JPEG_QUALITY),
        "LOGFILE": f"{workdir}/iipsrv.log",  # not the shared /tmp/iipsrv.log
    }
    env_lines = ",\n".join(f'      "{key}" => "{value}"' for key, value in env.items())
    return f"""server.modules = ("mod_fastcgi")
server.document-root = "{workdir}"
server.bind = "{HOST}"
server.port = {port}
server.errorlog = "{workdir}/lighttpd-error.log"
fastcgi.server = ( "/iiif" => ((
    "socket" => "{workdir}/iipsrv.sock",
    "bin-path" => "{iipsrv}",
    "check-local" => "disable",
    "max-procs" => {IIPSRV_PROCS},
    "bin-environment" => (
{env_lines}
    ),
)))
"""


@contextlib.contextmanager
def iipsrv_server(workdir: Path, iipsrv: Path) -> Iterator[tuple[Server, subprocess.Popen]]:
    """Run lighttpd (foreground, ``-D``) with iipsrv behind it, until the block ends."""
    port = free_port()
    conf = workdir / "lighttpd.conf"
    conf.write_text(lighttpd_config(workdir, port, iipsrv))
    server = Server("iipsrv", f"http://{HOST}:{port}", "/iiif/")
    with running(["lighttpd", "-D", "-f", str(conf)], "lighttpd/iipsrv", workdir / "lighttpd.log") as proc:
        wait_ready(server, proc, workdir / "lighttpd.log")
        yield server, proc


def our_env() -> tuple[dict[str, str], list[str]]:
    """The environment for our server: defaults only (no config file, no IIIF_SERVER_* overrides)."""
    dropped = sorted(key for key in os.environ if key.startswith("IIIF_SERVER_"))
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    env["IIIF_SERVER_CONFIG"] = "/dev/null"
    return env, dropped


@contextlib.contextmanager
def our_server(
    workdir: Path, binary: Path, workers: int | None, worker: str | None = None
) -> Iterator[tuple[Server, subprocess.Popen]]:
    """Run ``iiif-server serve`` with its default workers/threads (unless --our-workers) until the block ends;
    ``worker``: its ``[server] worker`` (gthread or asgi; default: its own default)."""
    port = free_port()
    cmd = [str(binary), "serve", "--images", str(IMAGES), "--port", str(port), "--host", HOST]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    env, dropped = our_env()
    if worker:
        env["IIIF_SERVER_SERVER_WORKER"] = worker
    if dropped:
        print(f"note: not passing {', '.join(dropped)} to our server (benchmarking defaults)")
    server = Server("ours", f"http://{HOST}:{port}", "/iiif/3/")
    log = workdir / "ours.log"
    with running(cmd, "iiif-server", log, env=env, cwd=workdir) as proc:
        wait_ready(server, proc, log)
        yield server, proc


def wait_ready(server: Server, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Poll info.json until the server answers 200; fail early, with its log, if it dies or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {proc.returncode} while starting:\n{log_tail(log)}")
        with contextlib.suppress(OSError):
            if fetch(server.url(BIG, "info.json"), timeout=5)[0] == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{server.name} did not answer within {timeout:.0f} s:\n{log_tail(log)}")


# ---------------------------------------------------------------- preflight


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never route 127.0.0.1 via a proxy


def fetch(url: str, timeout: float = 120) -> tuple[int, str, bytes]:
    """GET ``url``: status, content type and body, for error statuses too."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read()


def zoom_levels(picture: Picture) -> int:
    """Highest level (scale factor 2**level) at which the image still exceeds one tile, as random_tiles.lua counts."""
    levels = 0
    while max(picture.width, picture.height) / 2**levels > TILE:
        levels += 1
    return levels


def random_tile_tail(rng: random.Random, picture: Picture, level: int | None = None, edge: bool = False) -> str:
    """Same URL as random_tiles.lua draws (Python twin, so the preflight checks what wrk will send)."""
    scale = 2 ** (rng.randint(0, zoom_levels(picture)) if level is None else level)
    span = TILE * scale
    cols, rows = -(-picture.width // span), -(-picture.height // span)
    col, row = (cols - 1, rows - 1) if edge else (rng.randint(0, cols - 1), rng.randint(0, rows - 1))
    x, y = col * span, row * span
    w, h = min(span, picture.width - x), min(span, picture.height - y)
    return f"{x},{y},{w},{h}/{-(-w // scale)},{-(-h // scale)}/0/default.jpg"


def tile_samples(picture: Picture, count: int = 40) -> list[str]:
    """Random tiles plus the bottom-right edge tile of every level (where rounding bugs live)."""
    rng = random.Random(12345)
    edges = [random_tile_tail(rng, picture, level, edge=True) for level in range(zoom_levels(picture) + 1)]
    return [random_tile_tail(rng, picture) for _ in range(count)] + edges


def expected_size(tail: str) -> tuple[int, int] | None:
    """The w,h a tile URL asks for, from its size segment."""
    match = re.search(r"/(\d+),(\d+)/0/default\.jpg$", tail)
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_image(server: Server, picture: Picture, tail: str, expect: tuple[int, int] | None) -> str | None:
    """None if ``tail`` answers 200 with a JPEG of the expected size; else what is wrong."""
    status, ctype, body = fetch(server.url(picture, tail))
    if status != 200:
        return f"{server.name}: {tail} -> HTTP {status} {body[:120]!r}"
    try:
        image = pyvips.Image.new_from_buffer(body, "")
        size = (image.width, image.height)
    except pyvips.Error as err:
        return f"{server.name}: {tail} -> undecodable {ctype} ({err})"
    if expect is not None and size != expect:
        return f"{server.name}: {tail} -> {size[0]}×{size[1]}, expected {expect[0]}×{expect[1]}"
    return None


def check_info(server: Server, picture: Picture) -> str | None:
    """None if info.json parses and states the real width and height."""
    status, _, body = fetch(server.url(picture, "info.json"))
    if status != 200:
        return f"{server.name}: {picture.name}/info.json -> HTTP {status}"
    info = json.loads(body)
    if (info.get("width"), info.get("height")) != (picture.width, picture.height):
        return f"{server.name}: {picture.name}/info.json says {info.get('width')}×{info.get('height')}"
    return None


def preflight(server: Server, scenarios: Sequence[Scenario]) -> list[str]:
    """Every URL form the benchmark sends must give the right answer: a benchmark of errors is worthless."""
    problems = [check_info(server, picture) for picture in PICTURES]
    for scenario in scenarios:
        if scenario.tail is not None and scenario.tail != "info.json":
            tail = scenario.tail.format(w=PREFLIGHT_WIDTH) if scenario.distinct else scenario.tail
            problems.append(check_image(server, scenario.picture, tail, scenario.expect_size))
    if any(scenario.tail is None for scenario in scenarios):
        problems += [check_image(server, BIG, tail, expected_size(tail)) for tail in tile_samples(BIG)]
    return [problem for problem in problems if problem]


# ---------------------------------------------------------------- wrk


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _ms(text: str) -> float:
    """wrk latency ("866.00us", "5.50ms", "1.02s") in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"unparsable wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """Pull rate, percentiles, volume and every kind of error out of ``wrk --latency`` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    volume = re.search(r"(\d+) requests in [\d.]+\w+, ([\d.]+)(B|KB|MB|GB|TB) read", output)
    if not (rps and p50 and p99 and volume):
        raise ValueError(f"could not parse wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    kinds = ("connect", "read", "write", "timeout")
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        requests=int(volume.group(1)),
        bytes_read=float(volume.group(2)) * _BYTES[volume.group(3)],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(zip(kinds, map(int, sockets.groups()), strict=True)) if sockets else {},
    )


def wrk_command(server: Server, scenario: Scenario, seconds: int, seed: int) -> list[str]:
    """``wrk -t2 -cC -dDs --latency``, with the tile script (and its URL prefix) for random tiles."""
    cmd = ["wrk", f"-t{min(WRK_THREADS, scenario.connections)}", f"-c{scenario.connections}", f"-d{seconds}s"]
    cmd += ["--latency", "--timeout", f"{WRK_TIMEOUT_S}s"]
    if scenario.tail is not None:
        return [*cmd, server.url(scenario.picture, scenario.tail)]
    picture = scenario.picture
    args = [picture.name, str(picture.width), str(picture.height), str(TILE), server.prefix, str(seed)]
    return [*cmd, "-s", str(TILES_LUA), server.base, "--", *args]


def run_wrk(server: Server, scenario: Scenario, seconds: int, seed: int) -> WrkResult:
    """Run one wrk load and parse it; a wrk failure is an error of the benchmark, not a zero."""
    cmd = wrk_command(server, scenario, seconds, seed)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + WRK_TIMEOUT_S + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}{done.stderr}")
    return parse_wrk(done.stdout)


def distinct_widths(count: int, warmup: bool = False) -> list[int]:
    """Measured: FIRST_DISTINCT_WIDTH downwards; warm-up: above it (so it leaves nothing cached to hit)."""
    if warmup:
        return list(range(FIRST_DISTINCT_WIDTH + 1, FIRST_DISTINCT_WIDTH + 1 + count))
    return list(range(FIRST_DISTINCT_WIDTH, FIRST_DISTINCT_WIDTH - count, -1))


def run_distinct(server: Server, scenario: Scenario, widths: Sequence[int]) -> WrkResult:
    """Ask each width once, ``scenario.connections`` keep-alive connections at a time; time every request.

    wrk cannot stop after a fixed set of URLs, so this small client does it (renders take milliseconds, so
    its own cost is negligible beside them). Responses are read in full; only status 200 counts as success.
    """
    pending = iter(widths)
    lock = threading.Lock()
    latencies: list[float] = []
    volume = [0]
    failures: dict[str, int] = {"non-2xx": 0, "read": 0}
    host, port = server.base.removeprefix("http://").split(":")

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=WRK_TIMEOUT_S)
        try:
            while True:
                with lock:
                    width = next(pending, None)
                if width is None:
                    return
                path = f"{server.prefix}{scenario.picture.name}/{(scenario.tail or '').format(w=width)}"
                began = time.perf_counter()
                try:
                    conn.request("GET", path)
                    response = conn.getresponse()
                    body = response.read()
                except (OSError, http.client.HTTPException):
                    conn.close()
                    with lock:
                        failures["read"] += 1
                    continue
                elapsed = (time.perf_counter() - began) * 1000
                with lock:
                    latencies.append(elapsed)
                    volume[0] += len(body)
                    failures["non-2xx"] += response.status != 200
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(scenario.connections)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = WrkResult.from_latencies(latencies, time.monotonic() - began, volume[0])
    result.non_2xx = failures["non-2xx"]
    result.socket_errors = {"read": failures["read"]}
    return result


def scenario_seed(scenario: Scenario) -> int:
    """The same tile sequence for both servers, but a different one per scenario (no replay of cached tiles)."""
    return zlib.crc32(scenario.name.encode()) % 1_000_000


def measure(
    servers: Sequence[Server], scenario: Scenario, seconds: int, warmup: int, own_groups: set[int]
) -> dict[str, WrkResult]:
    """Warm up then measure each server in the given order; shout about errors and competing load at once."""
    results: dict[str, WrkResult] = {}
    seed = scenario_seed(scenario)
    count = min(MAX_DISTINCT, DISTINCT_PER_SECOND * seconds)
    warm_count = min(100, 4 * warmup)
    for server in servers:
        plan = (
            f"{warm_count}, measure {count} distinct sizes" if scenario.distinct else f"{warmup} s, measure {seconds} s"
        )
        print(f"  {scenario.name:<13} {server.name:<6} warm-up {plan} ...", end="", flush=True)
        if scenario.distinct:
            run_distinct(server, scenario, distinct_widths(warm_count, warmup=True))
        else:
            run_wrk(server, scenario, warmup, seed + 1)  # a different tile sequence from the measured one
        before, began = cpu_ticks(), time.monotonic()
        if scenario.distinct:
            result = run_distinct(server, scenario, distinct_widths(count))
        else:
            result = run_wrk(server, scenario, seconds, seed)
        result.foreign_cpu = foreign_share(before, time.monotonic() - began, own_groups)
        results[server.name] = result
        print(f" {result.rps:,.1f} req/s, p50 {fmt_ms(result.p50_ms)}, p99 {fmt_ms(result.p99_ms)}", flush=True)
        if result.errors:
            print(f"\n!!! {server.name} {scenario.name}: {result.error_text()} !!!\n", file=sys.stderr, flush=True)
        if result.foreign_cpu > FOREIGN_CPU_WARN:
            print(f"  ! other processes used {result.foreign_cpu:.0%} of the CPU during that run", file=sys.stderr)
    return results


# ---------------------------------------------------------------- quality


def luma(image: pyvips.Image) -> pyvips.Image:
    """Grey (luminance, sRGB-encoded) as float: SSIM is computed on luma, as usual."""
    if image.bands >= 3:
        image = image.colourspace("b-w")
    return image[0].cast("float")


def ssim(a: pyvips.Image, b: pyvips.Image) -> float:
    """Mean SSIM of two same-size images (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03).

    1.0 means identical; blur, aliasing, ringing and block artefacts all lower it. Plain libvips arithmetic,
    so no extra dependency.
    """
    x, y = luma(a), luma(b)

    def blur(image: pyvips.Image) -> pyvips.Image:
        return image.gaussblur(1.5, precision="float", min_ampl=0.01)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim_map = ((mx * my * 2 + c1) * (sxy * 2 + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(ssim_map.avg())


def lanczos_reference(picture: Picture, width: int, height: int) -> pyvips.Image:
    """The full-resolution image reduced to ``width`` × ``height`` by Lanczos-3 alone, in memory.

    ``gap=0`` turns off libvips' box-filter pre-shrink, so every output pixel is a true Lanczos-3 mix of
    the full-resolution pixels: the best a server could do, whatever shortcut (pyramid level, shrink on
    load, bilinear) it takes. Decodes all 300 MP once per size: seconds, outside any measurement.
    """
    source = pyvips.Image.new_from_file(str(IMAGES / picture.name), access="sequential")
    reduced = source.resize(width / source.width, vscale=height / source.height, kernel="lanczos3", gap=0.0)
    return reduced.copy_memory()


def quality(servers: Sequence[Server]) -> list[tuple[int, dict[str, tuple[float, float]]]]:
    """Per SSIM width: each server's (SSIM against the Lanczos reference, KB) for ``full/{w},``."""
    rows = []
    for width in SSIM_WIDTHS:
        scores: dict[str, tuple[float, float]] = {}
        references: dict[tuple[int, int], pyvips.Image] = {}
        for server in servers:
            status, _, body = fetch(server.url(BIG, DISTINCT_TAIL.format(w=width)))
            if status != 200:
                raise RuntimeError(f"{server.name}: full/{width}, answered {status} for the quality check")
            image = pyvips.Image.new_from_buffer(body, "")
            size = (image.width, image.height)
            if size not in references:  # servers may round the height differently: compare like with like
                references[size] = lanczos_reference(BIG, *size)
            scores[server.name] = (ssim(image, references[size]), len(body) / 1024)
        rows.append((width, scores))
    return rows


def quality_table(rows: Sequence[tuple[int, dict[str, tuple[float, float]]]], peer: str) -> str:
    """SSIM and size of both servers' renders: speed must not be bought with quality."""
    lines = [
        f"Quality of uncached renders: SSIM (luma, mean, 1 = identical) of `full/w,` against a Lanczos-3 "
        f"reduction of the full-resolution image made by libvips; JPEG Q{IIPSRV_JPEG_QUALITY} on both sides.",
        "",
        f"| size | ours SSIM | {peer} SSIM | ours KB | {peer} KB |",
        "|---|---:|---:|---:|---:|",
    ]
    for width, scores in rows:
        ours, theirs = scores["ours"], scores["iipsrv"]
        lines.append(f"| `full/{width},` | {ours[0]:.4f} | {theirs[0]:.4f} | {ours[1]:.1f} | {theirs[1]:.1f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- report


def fmt_ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms" if value < 1000 else f"{value / 1000:.2f} s"


def fmt_rps(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ") if value >= 100 else f"{value:.1f}"


Rows = Sequence[tuple[Scenario, dict[str, WrkResult]]]


def headline_table(rows: Rows, peer: str) -> str:
    """scenario | rates | ratio | latencies | errors: the numbers to compare."""
    columns = ["ours req/s", f"{peer} req/s", f"ours/{peer}", "ours p50", "ours p99", f"{peer} p50", f"{peer} p99"]
    lines = ["| scenario | " + " | ".join(columns) + " | errors |", "|---|" + "---:|" * len(columns) + "---|"]
    for scenario, result in rows:
        ours, peer = result["ours"], result["iipsrv"]
        errors = "; ".join(f"{name}: {r.error_text()}" for name, r in result.items() if r.errors)
        ratio = f"{ours.rps / peer.rps:.2f}" if peer.rps else "n/a"
        cells = [scenario.label, fmt_rps(ours.rps), fmt_rps(peer.rps), ratio]
        cells += [fmt_ms(ours.p50_ms), fmt_ms(ours.p99_ms), fmt_ms(peer.p50_ms), fmt_ms(peer.p99_ms)]
        lines.append("| " + " | ".join([*cells, f"**{errors}**" if errors else "0"]) + " |")
    return "\n".join(lines)


def targets_table(rows: Rows, quality_rows: Sequence[tuple[int, dict[str, tuple[float, float]]]], peer: str) -> str:
    """The issue-10 goals for the scenarios that ran: met or not, with the figure that decides."""
    by_name = {scenario.name: result for scenario, result in rows}
    lines = [f"| target | ours | {peer} | ours/{peer} | goal | met |", "|---|---:|---:|---:|---|---|"]
    for target in TARGETS:
        result = by_name.get(target.scenario)
        if result is None:
            continue
        ours, theirs = result["ours"], result["iipsrv"]
        ratio = ours.rps / theirs.rps if theirs.rps else 0.0
        if target.p99_ms is not None:
            cells = [fmt_ms(ours.p99_ms), fmt_ms(theirs.p99_ms), f"{ours.p99_ms / max(theirs.p99_ms, 1e-9):.2f}"]
            goal, met = f"ours p99 ≤ {target.p99_ms:g} ms", ours.p99_ms <= target.p99_ms
        else:
            cells = [f"{fmt_rps(ours.rps)} req/s", f"{fmt_rps(theirs.rps)} req/s", f"**{ratio:.2f}**"]
            goal, met = f"≥ {target.ratio:g}×", ratio >= (target.ratio or 0)
            if target.scenario == "full-distinct" and quality_rows:
                # "At least its image quality": SSIM compared at the precision it is reported with.
                worse = [w for w, q in quality_rows if round(q["ours"][0], 3) < round(q["iipsrv"][0], 3)]
                goal += f", SSIM ≥ {peer}'s"
                met = met and not worse
        errors = result["ours"].errors + result["iipsrv"].errors
        lines.append(
            f"| {target.what} | "
            + " | ".join([*cells, goal, ("yes" if met else "**no**") + (" (errors!)" if errors else "")])
            + " |"
        )
    return "\n".join(lines)


def detail_table(rows: Rows, peer: str) -> str:
    """Volumes and competing load: what tells whether the headline numbers can be trusted."""
    columns = ["ours requests", "ours KB/response", f"{peer} requests", f"{peer} KB/response", f"other CPU ours/{peer}"]
    lines = ["| scenario | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for scenario, result in rows:
        ours, peer = result["ours"], result["iipsrv"]
        kb = [r.bytes_read / max(r.requests, 1) / 1024 for r in (ours, peer)]
        other = " / ".join(
            f"{r.foreign_cpu:.0%}{' ⚠' if r.foreign_cpu > FOREIGN_CPU_WARN else ''}" for r in (ours, peer)
        )
        lines.append(f"| {scenario.label} | {ours.requests} | {kb[0]:.1f} | {peer.requests} | {kb[1]:.1f} | {other} |")
    note = (
        "Detail: KB per response (headers included) should be close between the servers; 'other CPU' is the "
        "share of the machine used by processes other than wrk and the two servers during the measured run "
        f"(⚠ above {FOREIGN_CPU_WARN:.0%}: that run competed with other work)."
    )
    return note + "\n\n" + "\n".join(lines)


def _command_output(cmd: Sequence[str]) -> str:
    try:
        done = subprocess.run(list(cmd), capture_output=True, text=True, check=False, cwd=REPO)
    except OSError:
        return "?"
    return (done.stdout or done.stderr).strip()


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def our_version() -> str:
    """Version and commit of the server under test; a dirty package tree is said so (others edit it live)."""
    version = _command_output([str(our_binary()), "--version"]).rsplit(" ", 1)[-1]
    commit = _command_output(["git", "rev-parse", "--short", "HEAD"])
    dirty = _command_output(["git", "status", "--porcelain", "--", "iiif_server"])
    return f"iiif-server {version} at {commit}" + (" + uncommitted changes in iiif_server/" if dirty else "")


def header(
    args: argparse.Namespace, peer: Peer, ours_proc: subprocess.Popen, iipsrv_proc: subprocess.Popen, server_header: str
) -> str:
    """Date, machine, versions and settings: a table without them cannot be compared with another."""
    memory = "?"
    with contextlib.suppress(OSError, IndexError, ValueError):
        memory = f"{int(Path('/proc/meminfo').read_text().split()[1]) / 1024**2:.0f} GiB"
    wrk_version = _command_output(["wrk", "-v"]).splitlines()[0].split(" [")[0]
    workers = children(ours_proc.pid)
    fcgi = [name for name in children(iipsrv_proc.pid) if name.startswith("iipsrv")]
    images = ", ".join(f"{p.name} {(IMAGES / p.name).stat().st_size / 1e6:.0f} MB" for p in PICTURES)
    ours_workers = "default" if args.our_workers is None else f"--workers {args.our_workers}"
    ours_workers += f", worker {args.worker or 'default'}"
    return "\n".join(
        [
            f"# iiif_server vs {peer.label} — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "",
            f"- machine: {os.cpu_count()} × {cpu_model()} (nproc {len(os.sched_getaffinity(0))}), {memory} RAM, "
            f"{platform.system()} {platform.release()}; wrk shares the cores with the server under test",
            f"- ours: {our_version()}, libvips {'.'.join(str(pyvips.version(i)) for i in range(3))} "
            f"(pyvips {pyvips.__version__}); {ours_workers} → {len(workers)} gunicorn worker processes",
            f"- peer: {peer.label}, {peer.origin}; answers `Server: {server_header}`;"
            f" {len(fcgi)} FastCGI processes behind {_command_output(['lighttpd', '-v']).split(' ')[0]}; "
            f"MAX_IMAGE_CACHE_SIZE={IIPSRV_CACHE_MB} MB, JPEG_QUALITY={IIPSRV_JPEG_QUALITY}, MAX_CVT={IIPSRV_MAX_CVT}, "
            'MEMCACHED_SERVERS="", URI_MAP="iiif=>IIIF"',
            f"- load: {wrk_version} -t{WRK_THREADS} -c<C> -d{args.duration}s --latency --timeout {WRK_TIMEOUT_S}s, "
            f"{args.warmup} s warm-up before each run, servers alternate first/second per scenario; "
            "random tiles: same seeded sequence for both servers, uniform over zoom levels; uncached renders: "
            f"{min(MAX_DISTINCT, DISTINCT_PER_SECOND * args.duration)} distinct widths from {FIRST_DISTINCT_WIDTH} "
            "down, each asked once per server by this script's own keep-alive client",
            f"- images (JPEG Q85, 256-px tiled pyramidal TIFF, synthetic photo-like): {images}",
        ]
    )


def write_results(text: str) -> Path:
    """bench/results/latest.md plus a timestamped copy (both git-ignored) to compare runs later."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{datetime.now(UTC):%Y%m%d-%H%M%S}.md").write_text(text)
    latest = RESULTS / "latest.md"
    latest.write_text(text)
    return latest


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    names = [scenario.name for scenario in SCENARIOS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, help="seconds per measured run (default 15; 5 with --quick)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up before each run (default 3; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: short runs, fewer scenarios")
    parser.add_argument("--only", help=f"comma-separated scenarios to run, from: {', '.join(names)}")
    parser.add_argument("--our-workers", type=int, help="pass --workers N to our server (default: its own default)")
    parser.add_argument(
        "--worker", choices=("gthread", "asgi"), help="our server's [server] worker (default: its own default)"
    )
    parser.add_argument(
        "--iipsrv",
        default=os.environ.get("IIPSRV"),
        help="iipsrv.fcgi to compare with (default: $IIPSRV), as bench/build-iipsrv.sh prints it; "
        "'debian' for the packaged iipsrv 1.1 (reference only)",
    )
    parser.add_argument(
        "--peer-version", help="iipsrv version for the tables (default: from its source's configure.ac or binary)"
    )
    args = parser.parse_args(argv)
    args.duration = args.duration or (5 if args.quick else 15)
    args.warmup = args.warmup if args.warmup is not None else (2 if args.quick else 3)
    if args.only:
        unknown = set(args.only.split(",")) - set(names)
        if unknown:
            parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(names)}")
    return args


def chosen_scenarios(args: argparse.Namespace) -> list[Scenario]:
    if args.only:
        wanted = set(args.only.split(","))
        return [scenario for scenario in SCENARIOS if scenario.name in wanted]
    return [scenario for scenario in SCENARIOS if scenario.quick or not args.quick]


def server_header(server: Server) -> str:
    """The Server header of an info.json answer: the version the peer says it is."""
    with _OPENER.open(server.url(BIG, "info.json"), timeout=30) as response:
        return response.headers.get("Server", "?")


def benchmark(args: argparse.Namespace, peer_bin: Peer, ours_bin: Path) -> int:
    """Start both servers, verify them, run the scenarios alternately, report. Returns the exit status."""
    scenarios = chosen_scenarios(args)
    with tempfile.TemporaryDirectory(prefix="iiif-bench-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        peer, peer_proc = stack.enter_context(iipsrv_server(workdir, peer_bin.binary))
        ours, ours_proc = stack.enter_context(our_server(workdir, ours_bin, args.our_workers, args.worker))
        print(f"iipsrv at {peer.base}{peer.prefix}, ours at {ours.base}{ours.prefix}; checking answers ...")
        problems = preflight(peer, scenarios) + preflight(ours, scenarios)
        if problems:
            print("!!! wrong answers before any load; not benchmarking:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
        busy = cpu_busy()
        if busy > 0.2:
            print(
                f"!!! the machine is {busy:.0%} busy before any load: other work will skew the numbers", file=sys.stderr
            )
        top = header(args, peer_bin, ours_proc, peer_proc, server_header(peer))
        top += f"\n- CPU busy before the runs (both servers idle): {busy:.0%}"
        own_groups = {os.getpgid(0), ours_proc.pid, peer_proc.pid}
        rows = []
        for index, scenario in enumerate(scenarios):
            order = (ours, peer) if index % 2 == 0 else (peer, ours)
            rows.append((scenario, measure(order, scenario, args.duration, args.warmup, own_groups)))
        quality_rows = []
        if any(scenario.distinct for scenario in scenarios):
            print("  quality: SSIM of full/w, against a Lanczos-3 reference ...", flush=True)
            quality_rows = quality((ours, peer))
    label = peer_bin.label
    report = f"{top}\n\n{headline_table(rows, label)}\n\n"
    if quality_rows:
        report += f"{quality_table(quality_rows, label)}\n\n"
    report += f"Issue-10 targets:\n\n{targets_table(rows, quality_rows, label)}\n\n{detail_table(rows, label)}\n"
    failed = [f"{s.name}/{name}: {r.error_text()}" for s, result in rows for name, r in result.items() if r.errors]
    if failed:
        report += "\n**ERRORS — these numbers measure failures, not serving:** " + "; ".join(failed) + "\n"
    print("\n" + report)
    print(f"written to {write_results(report).relative_to(REPO)}")
    if failed:
        print("!!! non-2xx responses or socket errors: see above", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Check tools, build images, benchmark; SIGTERM/SIGHUP end it like Ctrl-C (servers stopped first)."""
    args = parse_args(argv)
    peer, ours_bin = check_prerequisites(args)
    become_subreaper()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_exit)
    ensure_images()
    try:
        return benchmark(args, peer, ours_bin)
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
