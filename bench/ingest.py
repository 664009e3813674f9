"""Ingest throughput: ``iiif-server ingest`` against the ``vips`` command line doing the same conversion.

One command (see bench/README.md)::

    .venv/bin/python bench/ingest.py [--reps 3] [--jpegs 200] [--only scan,jpegs] [--workers 2]
                                     [--no-bare] [--no-deb] [--no-breakdown] [--work DIR]

It synthesises two input sets once (reused on a rerun): one 20 000 × 15 000 uncompressed, untiled RGB TIFF
(a raw scan, ~900 MB) and a folder of camera-like 4000 × 3000 JPEGs (Q92, every fourth with EXIF orientation
6). Then, for each set, in one session and in rotating order, it converts the set into 256-px-tiled,
JPEG-Q90 pyramidal TIFFs with

- **ours**: ``iiif-server ingest SET --images FRESH_ROOT --workers N`` (``IIIF_SERVER_CONFIG=/dev/null``: the
  ``[ingest]`` defaults, quality 90, jpeg, tile 256), with its sha256 fixity, fsync and catalogue;
- **cli**: ``vips tiffsave IN OUT --tile --tile-width 256 --tile-height 256 --pyramid --compression jpeg --Q 90``
  per file (``vips autorot IN 'OUT[…]'`` for files with an EXIF orientation, so both do the same work), N
  files at a time with ``xargs -P N``;
- **bare** (diagnostic): the same save from a few lines of pyvips, N processes, on the *same* libvips as ours,
  so "ours vs bare" is our overhead and "bare vs cli" is the libvips build;
- **ours-deb** (diagnostic): ours with pyvips in ABI mode on Debian's libvips, the CLI's: like for like.

Megapixels/s are input pixels over wall time. Peak RSS is the largest process of the run (``RUSAGE_CHILDREN``
of a wrapper process) and the sampled peak of the whole process tree. After every run the page cache is
synced outside the timed part (ours fsyncs inside it; the time the sync takes is recorded as the durability
cost the CLI defers). A breakdown run then times the stages of ours one by one (start-up, pool spawn,
sha256, conversion, fsync, catalogue). Results go to ``bench/results/ingest-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import host
import pyvips
from host import output
from synth_images import photo_like

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
DEFAULT_WORK = BENCH / "images" / "ingest"
PYTHON = REPO / ".venv" / "bin" / "python"
CLI = REPO / ".venv" / "bin" / "iiif-server"
VIPS = shutil.which("vips") or "/usr/bin/vips"

SCAN_W, SCAN_H = 20000, 15000
JPEG_W, JPEG_H = 4000, 3000
JPEG_Q = 92
#: Every n-th camera JPEG carries EXIF orientation 6 (camera held upright): ours rotates it, so the CLI must too.
ROTATED_EVERY = 4
#: The ``[ingest]`` defaults ours runs with; the CLI and the bare runner are given the same.
QUALITY, TILE = 90, 256
SAVE_ARGS = [
    "--tile",
    "--tile-width",
    str(TILE),
    "--tile-height",
    str(TILE),
    "--pyramid",
    "--compression",
    "jpeg",
    "--Q",
    str(QUALITY),
]
SAVE_SUFFIX = f"[tile,tile-width={TILE},tile-height={TILE},pyramid,compression=jpeg,Q={QUALITY}]"
#: Foreign CPU share (of the whole machine) above which a run is flagged: it competed with other work.
FOREIGN_CPU_WARN = 0.05
RUNNERS = ("ours", "cli", "bare", "ours-deb")
#: Put first on PYTHONPATH for ``ours-deb``: pyvips then cannot import its compiled binding and falls back to
#: ABI mode, which dlopen()s ``libvips.so.42`` -- Debian's, the library the ``vips`` command uses.
#: (key, numerator, denominator) of the throughput ratios reported.
RATIOS = (
    ("ratio_ours_cli", "ours", "cli"),  # the headline: target >= 0.9
    ("ratio_oursdeb_cli", "ours-deb", "cli"),  # the same, both on Debian's libvips
    ("ratio_ours_bare", "ours", "bare"),  # our overhead over libvips, both on the wheel's libvips
    ("ratio_bare_cli", "bare", "cli"),  # the libvips build (wheel vs Debian), no Python overhead to speak of
)
DEB_SITECUSTOMIZE = 'import sys\nsys.modules["_libvips"] = None  # pyvips ABI mode on the system libvips\n'

#: Runs one measured command and reports what the kernel knows about its whole tree: wall time, CPU time and
#: the largest resident set of any descendant (RUSAGE_CHILDREN covers every waited-for descendant).
WRAPPER = r"""
import json, os, resource, subprocess, sys, time
report, cmd = sys.argv[1], sys.argv[2:]
started = time.monotonic()
code = subprocess.call(cmd)
wall = time.monotonic() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(report, "w") as handle:
    json.dump({"exit": code, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
               "user_s": usage.ru_utime, "sys_s": usage.ru_stime, "max_rss_kb": usage.ru_maxrss}, handle)
"""

#: The bare runner: what ours does to the pixels (sequential read; autorot when EXIF asks), nothing else.
BARE = r"""
import sys
from pathlib import Path
import pyvips
out = Path(sys.argv[1])
for name in sys.argv[2:]:
    image = pyvips.Image.new_from_file(name, access="sequential")
    if image.get_typeof("orientation") and image.get("orientation") not in (0, 1):
        image = pyvips.Image.new_from_file(name).autorot()
    image.tiffsave(str(out / (Path(name).stem + ".tif")), tile=True, tile_width=%d, tile_height=%d,
                   pyramid=True, compression="jpeg", Q=%d)
""" % (TILE, TILE, QUALITY)  # noqa: UP031

#: Times the stages of ours in one process (workers=1): each function ``batch.process`` calls is wrapped.
BREAKDOWN = r"""
import json, os, sys, time
started = time.perf_counter()
from pathlib import Path
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from iiif_server.ingest import batch, masters
from iiif_server.ingest.convert import MasterOptions
import iiif_server.cli, iiif_server.ingest.report  # what the command imports before it starts
imports = time.perf_counter() - started
stages = {}
def timed(name, fn):
    def wrapper(*args, **kwargs):
        key = name(args) if callable(name) else name
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            stages[key] = stages.get(key, 0.0) + time.perf_counter() - t
    return wrapper
batch.sha256_of = timed("sha256 source", batch.sha256_of)
masters.sha256_of = timed("sha256 master", masters.sha256_of)
batch.to_master = timed("convert (libvips)", batch.to_master)
masters._fsync = timed("fsync", masters._fsync)
masters.FixityCatalogue.__init__ = timed("catalogue open", masters.FixityCatalogue.__init__)
masters.FixityCatalogue.get = timed("catalogue get", masters.FixityCatalogue.get)
masters.FixityCatalogue.record = timed("catalogue record", masters.FixityCatalogue.record)
source, root, limit = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
jobs, _ = batch.plan([source])
jobs = jobs[:limit]
t = time.perf_counter()
outcomes = batch.run(jobs, root, MasterOptions(), workers=1)
total = time.perf_counter() - t
assert all(o.status == "ingested" for o in outcomes), [o.reason for o in outcomes if o.status != "ingested"]
t = time.perf_counter()
with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
    list(pool.map(batch._size, [source, source]))  # unpickling batch._size imports the ingest modules
spawn = time.perf_counter() - t
print(json.dumps({"files": len(jobs), "imports_s": imports, "process_total_s": total, "stages_s": stages,
                  "pool_spawn_2_s": spawn}))
"""


# ---------------------------------------------------------------- inputs


@dataclass
class InputSet:
    name: str
    label: str
    path: Path  # what ours is given: a file or a folder
    files: list[Path]
    pixels: int
    rotated: list[bool]
    workers: int
    bytes: int = 0

    @property
    def megapixels(self) -> float:
        return self.pixels / 1e6


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _atomic_save(image: pyvips.Image, path: Path, **options: Any) -> None:
    partial = path.with_name(path.name + ".partial" + path.suffix)
    try:
        image.write_to_file(str(partial), **options)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def ensure_scan(work: Path) -> Path:
    """The raw scan: uncompressed, untiled (strips) 8-bit RGB, photo-like content; ~20 s, ~200 MB of memory."""
    path = work / "scan" / f"scan-{SCAN_W}x{SCAN_H}.tif"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        print(f"synthesising {_shown(path)} …", flush=True)
        _atomic_save(photo_like(SCAN_W, SCAN_H, 11), path, tile=False, compression="none")
        print(f"  done in {time.monotonic() - started:.0f} s", flush=True)
    return path


def ensure_jpegs(work: Path, count: int) -> Path:
    """Camera-like JPEGs: 4000×3000 windows of one photo-like canvas, flipped and re-exposed, Q92."""
    folder = work / f"jpegs-{count}"
    wanted = [folder / f"cam-{i:04d}.jpg" for i in range(count)]
    if all(p.is_file() for p in wanted):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"synthesising {count} JPEGs in {_shown(folder)} …", flush=True)
    canvas = photo_like(JPEG_W * 3 // 2, JPEG_H * 3 // 2, 5).copy_memory()
    rng = random.Random(7)
    for i, path in enumerate(wanted):
        x, y = rng.randrange(canvas.width - JPEG_W), rng.randrange(canvas.height - JPEG_H)
        image = canvas.crop(x, y, JPEG_W, JPEG_H)
        if rng.random() < 0.5:
            image = image.fliphor()
        if rng.random() < 0.5:
            image = image.flipver()
        image = (image * rng.uniform(0.8, 1.15) + rng.uniform(-10, 10)).cast("uchar").copy(interpretation="srgb")
        if i % ROTATED_EVERY == ROTATED_EVERY - 1:
            image = image.copy()
            image.set_type(pyvips.GValue.gint_type, "orientation", 6)  # written to the EXIF block by jpegsave
        if not path.is_file():
            _atomic_save(image, path, Q=JPEG_Q)
    print(f"  done in {time.monotonic() - started:.0f} s", flush=True)
    return folder


def describe(name: str, label: str, path: Path, workers: int) -> InputSet:
    files = sorted(path.glob("*.jpg")) if path.is_dir() else [path]
    pixels, rotated, size = 0, [], 0
    for file in files:
        header = pyvips.Image.new_from_file(str(file))
        pixels += header.width * header.height
        orientation = header.get("orientation") if header.get_typeof("orientation") else 1
        rotated.append(orientation not in (0, 1))
        size += file.stat().st_size
    return InputSet(name, label, path, files, pixels, rotated, workers, size)


# ---------------------------------------------------------------- measuring


@dataclass
class Run:
    input_set: str
    runner: str
    rep: int
    order: int
    command: list[str]
    workers: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    user_s: float = 0.0
    sys_s: float = 0.0
    mp_per_s: float = 0.0
    max_rss_mb: float = 0.0  # largest single process
    tree_rss_mb: float = 0.0  # sampled peak of the sum over the process tree
    max_threads: int = 0  # most threads seen in any one process of the tree (libvips workers and helpers)
    output_bytes: int = 0
    output_files: int = 0
    sync_after_s: float = 0.0
    foreign_cpu: float = 0.0
    load_before: float = 0.0
    exit_code: int = 0
    problems: list[str] = field(default_factory=list)


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        here = todo.pop()
        found.append(here)
        with contextlib.suppress(OSError):
            todo += [int(c) for c in Path(f"/proc/{here}/task/{here}/children").read_text().split()]
    return found


def _tree_sample(pid: int) -> tuple[int, int]:
    """Resident bytes summed over the process tree, and the most threads any one process of it has."""
    page = os.sysconf("SC_PAGE_SIZE")
    total, threads = 0, 0
    for child in _descendants(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{child}/statm").read_text().split()[1]) * page
            threads = max(threads, int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[17]))
    return total, threads


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, every process, dead or alive), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def _own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # this process: the RSS sampler thread
    return usage.ru_utime + usage.ru_stime


def measure(run: Run, input_set: InputSet, out: Path, logs: Path, env: dict[str, str]) -> None:
    """Run ``run.command`` under the wrapper in its own session; fill in the numbers."""
    report = logs / f"{input_set.name}-{run.runner}-{run.rep}.json"
    log = logs / f"{input_set.name}-{run.runner}-{run.rep}.log"
    run.load_before = round(os.getloadavg()[0], 2)
    busy_before, own_before = _busy_seconds(), _own_seconds()
    started = time.monotonic()
    peak = [0, 0]
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            [str(PYTHON), "-c", WRAPPER, str(report), *run.command],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.2):
                rss, threads = _tree_sample(proc.pid)
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], threads)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            proc.wait()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            done.set()
            sampler.join()
    elapsed = time.monotonic() - started
    numbers = json.loads(report.read_text())
    # Whatever the machine did besides the measured tree (and this process) competed with it: other people's
    # tests and benchmarks, short-lived processes included. Share of all cores over the run.
    foreign = _busy_seconds() - busy_before - numbers["cpu_s"] - (_own_seconds() - own_before)
    run.foreign_cpu = round(max(0.0, foreign) / elapsed / (os.cpu_count() or 1), 3)
    run.exit_code = numbers["exit"]
    run.wall_s = round(numbers["wall_s"], 3)
    run.cpu_s, run.user_s, run.sys_s = (round(numbers[k], 2) for k in ("cpu_s", "user_s", "sys_s"))
    run.max_rss_mb = round(numbers["max_rss_kb"] / 1024, 1)
    run.tree_rss_mb = round(peak[0] / 2**20, 1)
    run.max_threads = peak[1]
    run.mp_per_s = round(input_set.megapixels / run.wall_s, 2)
    masters = [p for p in out.rglob("*.tif") if not any(part.startswith(".") for part in p.relative_to(out).parts)]
    run.output_files = len(masters)
    run.output_bytes = sum(p.stat().st_size for p in masters)
    if run.exit_code != 0:
        tail = log.read_text(errors="replace").splitlines()[-10:]
        run.problems.append(f"exit {run.exit_code}: " + " | ".join(tail))
    if run.output_files != len(input_set.files):
        run.problems.append(f"{run.output_files} masters for {len(input_set.files)} inputs")
    if run.runner == "ours":
        summary = _ours_summary(log)
        if summary.get("ingested") != len(input_set.files):
            run.problems.append(f"ours reported {summary}")


def _ours_summary(log: Path) -> dict[str, int]:
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                return dict(json.loads(line)["counts"])
    return {}


def check_outputs(input_set: InputSet, out: Path, runner: str) -> list[str]:
    """Every master has the rotated size and a full pyramid (levels as pages) with 256-px JPEG tiles."""
    problems = []
    for source, rotated in zip(input_set.files, input_set.rotated, strict=True):
        target = out / (source.stem + ".tif")
        if not target.is_file():
            problems.append(f"{runner}: no master for {source.name}")
            continue
        header = pyvips.Image.new_from_file(str(target))
        src = pyvips.Image.new_from_file(str(source))
        want = (src.height, src.width) if rotated else (src.width, src.height)
        levels = math.ceil(math.log2(max(want) / TILE)) + 1
        pages = header.get("n-pages") if header.get_typeof("n-pages") else 1
        if (header.width, header.height) != want or pages < levels - 1:
            problems.append(f"{runner}: {target.name} is {header.width}×{header.height}, {pages} levels")
    return problems


def commands(input_set: InputSet, runner: str, out: Path, logs: Path) -> list[str]:
    workers = str(input_set.workers)
    if runner in ("ours", "ours-deb"):
        return [str(CLI), "ingest", str(input_set.path), "--images", str(out), "--workers", workers, "--json"]
    if runner == "cli":
        lines = []
        for source, rotated in zip(input_set.files, input_set.rotated, strict=True):
            target = out / (source.stem + ".tif")
            if rotated:  # the CLI's tiffsave keeps EXIF orientation as a tag; ours applies it: do the same work
                lines.append(f"{VIPS} autorot '{source}' '{target}{SAVE_SUFFIX}'")
            else:
                lines.append(f"{VIPS} tiffsave '{source}' '{target}' " + " ".join(SAVE_ARGS))
        listing = logs / f"{input_set.name}-cli-commands.txt"
        listing.write_text("\n".join(lines) + "\n")
        return ["xargs", "-a", str(listing), "-d", "\n", "-P", workers, "-n", "1", "sh", "-c"]
    per_process = math.ceil(len(input_set.files) / input_set.workers)
    listing = logs / f"{input_set.name}-bare-files.txt"
    listing.write_text("\n".join(str(f) for f in input_set.files) + "\n")
    return [
        "xargs",
        "-a",
        str(listing),
        "-d",
        "\n",
        "-P",
        workers,
        "-n",
        str(per_process),
        str(PYTHON),
        "-c",
        BARE,
        str(out),
    ]


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def warm(files: Sequence[Path]) -> None:
    """Read the inputs once so every run finds them in the page cache, the first as much as the last."""
    for file in files:
        with file.open("rb") as handle:
            while handle.read(1 << 24):
                pass


def child_env(runner: str, work: Path) -> dict[str, str]:
    """No IIIF_SERVER_* or VIPS_* settings from outside (libvips' defaults on every side), no config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IIIF_SERVER_", "VIPS_", "PYTHON"))}
    env["IIIF_SERVER_CONFIG"] = "/dev/null"
    if runner == "ours-deb":
        env["PYTHONPATH"] = str(work / "deb-libvips")
    return env


def deb_libvips(work: Path) -> str:
    """Set up ``ours-deb``; the libvips version pyvips then loads ('' if it does not load Debian's)."""
    folder = work / "deb-libvips"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(DEB_SITECUSTOMIZE)
    probe = "import pyvips; v = pyvips.version; print(pyvips.API_mode, f'{v(0)}.{v(1)}.{v(2)}')"
    found = subprocess.run(
        [str(PYTHON), "-c", probe], capture_output=True, text=True, env=child_env("ours-deb", work), check=False
    ).stdout.split()
    return found[1] if found[:1] == ["False"] else ""


def benchmark_set(input_set: InputSet, runners: Sequence[str], reps: int, work: Path, logs: Path) -> list[Run]:
    warm(input_set.files)
    os.sync()
    runs: list[Run] = []
    checked: set[str] = set()
    for rep in range(reps):
        shift = rep % len(runners)
        order = list(runners[shift:]) + list(runners[:shift])  # each runner takes each place in turn
        for place, runner in enumerate(order):
            out = fresh(work / "out" / f"{input_set.name}-{runner}")
            if sys.stdout.isatty():
                print(f"  {input_set.name:<6} rep {rep + 1} {runner:<8} …", end="\r", flush=True)
            run = Run(input_set.name, runner, rep, place, [], input_set.workers)
            run.command = commands(input_set, runner, out, logs)
            measure(run, input_set, out, logs, child_env(runner, work))
            if runner not in checked:
                run.problems += check_outputs(input_set, out, runner)
                checked.add(runner)
            started = time.monotonic()
            os.sync()  # write back what the run left dirty, untimed, so it does not slow the next run
            run.sync_after_s = round(time.monotonic() - started, 2)
            shutil.rmtree(out, ignore_errors=True)
            flag = f"  ⚠ foreign CPU {run.foreign_cpu:.0%}" if run.foreign_cpu > FOREIGN_CPU_WARN else ""
            bad = f"  ✗ {'; '.join(run.problems)}" if run.problems else ""
            print(
                f"  {input_set.name:<6} rep {rep + 1} {runner:<8} {run.wall_s:7.2f} s  {run.mp_per_s:7.1f} MP/s  "
                f"cpu {run.cpu_s:6.1f} s  rss {run.max_rss_mb:5.0f}/{run.tree_rss_mb:5.0f} MB  "
                f"thr {run.max_threads:2d}  out {run.output_bytes / 1e6:6.0f} MB  "
                f"sync {run.sync_after_s:.1f} s{flag}{bad}",
                flush=True,
            )
            runs.append(run)
    return runs


def breakdown(input_set: InputSet, work: Path, limit: int) -> dict[str, Any]:
    """Stages of ours for ``limit`` files of the set, sequentially in one process."""
    out = fresh(work / "out" / f"{input_set.name}-breakdown")
    source = input_set.path
    env = child_env("ours", work)
    try:
        started = time.monotonic()
        done = subprocess.run(
            [str(PYTHON), "-c", BREAKDOWN, str(source), str(out), str(limit)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        wall = time.monotonic() - started
    finally:
        shutil.rmtree(out, ignore_errors=True)
        os.sync()
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-5:]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    files = input_set.files[: result["files"]]
    result["megapixels"] = round(sum(_pixels(f) for f in files) / 1e6, 1)
    result["source_mb"] = round(sum(f.stat().st_size for f in files) / 1e6, 1)
    result["wall_s"] = round(wall, 2)
    # Interpreter start-up before the first import and everything after the batch (exit).
    result["stages_s"] = {k: round(v, 3) for k, v in result["stages_s"].items()}
    stages = sum(result["stages_s"].values())
    result["other_in_process_s"] = round(result["process_total_s"] - stages, 3)
    return result


def _pixels(path: Path) -> int:
    header = pyvips.Image.new_from_file(str(path))
    return header.width * header.height


def cli_baseline(input_set: InputSet, work: Path, limit: int) -> float:
    """Wall time of the CLI on the breakdown's files, sequentially, for the same-sized comparison."""
    out = fresh(work / "out" / f"{input_set.name}-cli-seq")
    started = time.monotonic()
    for source, rotated in zip(input_set.files[:limit], input_set.rotated[:limit], strict=True):
        target = out / (source.stem + ".tif")
        if rotated:
            subprocess.run([VIPS, "autorot", str(source), f"{target}{SAVE_SUFFIX}"], check=True)
        else:
            subprocess.run([VIPS, "tiffsave", str(source), str(target), *SAVE_ARGS], check=True)
    wall = time.monotonic() - started
    shutil.rmtree(out, ignore_errors=True)
    os.sync()
    return round(wall, 2)


# ---------------------------------------------------------------- report


def summarise(input_sets: Sequence[InputSet], runs: Sequence[Run], runners: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for input_set in input_sets:
        row: dict[str, Any] = {
            "input_set": input_set.name,
            "label": input_set.label,
            "workers": input_set.workers,
            "megapixels": round(input_set.megapixels, 1),
            "files": len(input_set.files),
        }
        for runner in runners:
            mine = [r for r in runs if r.input_set == input_set.name and r.runner == runner]
            if not mine:
                continue
            wall = statistics.median(r.wall_s for r in mine)
            row[runner] = {
                "median_wall_s": round(wall, 2),
                "walls_s": [r.wall_s for r in mine],
                "mp_per_s": round(input_set.megapixels / wall, 2),
                "best_mp_per_s": round(input_set.megapixels / min(r.wall_s for r in mine), 2),
                "cpu_s": round(statistics.median(r.cpu_s for r in mine), 2),
                "max_rss_mb": max(r.max_rss_mb for r in mine),
                "tree_rss_mb": max(r.tree_rss_mb for r in mine),
                "max_threads": max(r.max_threads for r in mine),
                "output_mb": round(statistics.median(r.output_bytes for r in mine) / 1e6, 1),
                "sync_after_s": round(statistics.median(r.sync_after_s for r in mine), 2),
                "foreign_cpu_max": max(r.foreign_cpu for r in mine),
            }
        for key, top, bottom in RATIOS:
            if top in row and bottom in row:
                row[key] = round(row[top]["mp_per_s"] / row[bottom]["mp_per_s"], 3)
                row[f"best_{key}"] = round(row[top]["best_mp_per_s"] / row[bottom]["best_mp_per_s"], 3)
        rows.append(row)
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    def rss(cell: dict[str, Any] | None) -> str:
        return f"{cell['max_rss_mb']:.0f} / {cell['tree_rss_mb']:.0f}" if cell else "–"

    def mps(cell: dict[str, Any] | None) -> str:
        return f"{cell['mp_per_s']:.1f}" if cell else "–"

    def ratio(row: dict[str, Any], key: str) -> str:
        value, best = row.get(key), row.get(f"best_{key}")
        if value is None:
            return "–"
        text = f"{value:.2f}× ({best:.2f}×)"
        return f"**{text}**" if value < 0.9 else text

    lines = [
        "| input set | ours MP/s | CLI MP/s | **ours/CLI** | ours on Debian's libvips MP/s | same-libvips ours/CLI "
        "| bare pyvips MP/s | ours/bare | bare/CLI | ours peak RSS MB (proc / tree) | CLI peak RSS MB (proc / tree) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['label']} | {mps(row.get('ours'))} | {mps(row.get('cli'))} | {ratio(row, 'ratio_ours_cli')} "
            f"| {mps(row.get('ours-deb'))} | {ratio(row, 'ratio_oursdeb_cli')} "
            f"| {mps(row.get('bare'))} | {ratio(row, 'ratio_ours_bare')} | {ratio(row, 'ratio_bare_cli')} "
            f"| {rss(row.get('ours'))} | {rss(row.get('cli'))} |"
        )
    lines += [
        "",
        "Ratios: of medians (of best runs). MP/s: input megapixels over median wall time.",
        "",
        "| input set | runner | median wall s (all) | best MP/s | CPU s | threads | peak RSS MB (proc / tree) "
        "| output MB | sync after s | max foreign CPU |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        for runner in RUNNERS:
            cell = row.get(runner)
            if cell:
                walls = ", ".join(f"{w:.1f}" for w in cell["walls_s"])
                warn = " ⚠" if cell["foreign_cpu_max"] > FOREIGN_CPU_WARN else ""
                lines.append(
                    f"| {row['input_set']} | {runner} | {cell['median_wall_s']:.2f} ({walls}) "
                    f"| {cell['best_mp_per_s']:.1f} | {cell['cpu_s']:.1f} | {cell['max_threads']} | {rss(cell)} "
                    f"| {cell['output_mb']:.0f} | {cell['sync_after_s']:.1f} | {cell['foreign_cpu_max']:.0%}{warn} |"
                )
    return "\n".join(lines)


def breakdown_table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| input set | files | MP | stage | s | share of ours' batch |", "|---|--:|--:|---|--:|--:|"]
    for name, result in results.items():
        if "error" in result:
            lines.append(f"| {name} | | | error | | {result['error']} |")
            continue
        total = result["process_total_s"]
        stages = dict(result["stages_s"], **{"other (plan, rename, Python)": result["other_in_process_s"]})
        head = f"| {name} | {result['files']} | {result['megapixels']:.0f} "
        for stage, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
            lines.append(f"{head}| {stage} | {seconds:.2f} | {seconds / total:.0%} |")
            head = "| | | "
        lines.append(f"| | | | **batch total (workers=1)** | **{total:.2f}** | |")
        lines.append(f"| | | | CLI, same files, one after another | {result.get('cli_sequential_s', 0):.2f} | |")
        lines.append(f"| | | | imports (`iiif_server.cli` + ingest) | {result['imports_s']:.2f} | |")
        lines.append(f"| | | | spawn pool of 2 (per batch, ours at N>1) | {result['pool_spawn_2_s']:.2f} | |")
    return "\n".join(lines)


def versions() -> dict[str, Any]:
    ours = output(
        [
            str(PYTHON),
            "-c",
            "import pyvips; v = pyvips.version; print(v(0), v(1), v(2), sep='.'); "
            "print(pyvips.vips_lib.vips_concurrency_get()); print(pyvips.__version__)",
        ]
    ).splitlines()
    libs = REPO / ".venv" / "lib"
    wheel_jpeg = ""
    for so in libs.glob("python*/site-packages/pyvips_binary.libs/libvips*.so*"):
        wheel_jpeg = next(
            (
                line
                for line in output(["strings", str(so)]).splitlines()
                if line.startswith(("mozjpeg version", "libjpeg-turbo version"))
            ),
            "",
        )
    debian = output(["dpkg-query", "-W", "-f", "${Package} ${Version}\n", "libvips42", "libjpeg62-turbo", "libtiff6"])
    return {
        "ours_libvips": ours[0] if ours else "",
        "ours_vips_concurrency_default": int(ours[1]) if len(ours) > 1 else None,
        "pyvips": ours[2] if len(ours) > 2 else "",
        "ours_jpeg_codec": wheel_jpeg,
        "cli": output([VIPS, "--version"]),
        # libvips (any version) defaults to VIPS_CONCURRENCY, else the number of cores; the env is cleared here.
        "cli_vips_concurrency_default": os.cpu_count(),
        "cli_debian_packages": debian.splitlines(),
        "iiif_server": output([str(CLI), "--version"]),
    }


def machine() -> dict[str, Any]:
    return host.describe(REPO, PYTHON)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="inputs and scratch outputs (git-ignored)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per runner and set (median is reported)")
    parser.add_argument("--jpegs", type=int, default=200, help="camera JPEGs in the folder set")
    parser.add_argument("--workers", type=int, default=2, help="processes for the JPEG folder, on every side")
    parser.add_argument("--only", default="scan,jpegs", help="input sets: scan, jpegs (comma-separated)")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare-pyvips diagnostic runner")
    parser.add_argument("--no-deb", action="store_true", help="skip ours on Debian's libvips (pyvips ABI mode)")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the stage-by-stage run of ours")
    parser.add_argument("--breakdown-jpegs", type=int, default=40, help="JPEGs the breakdown converts")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = {s.strip() for s in args.only.split(",") if s.strip()}
    if unknown := wanted - {"scan", "jpegs"}:
        sys.exit(f"unknown input set(s): {', '.join(sorted(unknown))}")
    if not Path(VIPS).is_file():
        sys.exit("no `vips` command: apt-get install -y libvips-tools")
    work: Path = args.work.resolve()
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    started = time.monotonic()
    input_sets = []
    if "scan" in wanted:
        scan = ensure_scan(work)
        input_sets.append(describe("scan", f"1 raw scan {SCAN_W}×{SCAN_H} TIFF, N=1", scan, 1))
    if "jpegs" in wanted:
        folder = ensure_jpegs(work, args.jpegs)
        label = f"{args.jpegs} camera JPEGs {JPEG_W}×{JPEG_H}, N={args.workers}"
        input_sets.append(describe("jpegs", label, folder, args.workers))
    skip = {"bare"} if args.no_bare else set()
    info = {"machine": machine(), "versions": versions()}
    if not args.no_deb:
        info["versions"]["ours_deb_libvips"] = deb_libvips(work)
        if not info["versions"]["ours_deb_libvips"].startswith(info["versions"]["cli"].removeprefix("vips-")[:4]):
            print("ours-deb: pyvips did not load the CLI's libvips; skipping that runner", file=sys.stderr)
            skip.add("ours-deb")
    else:
        skip.add("ours-deb")
    runners = [r for r in RUNNERS if r not in skip]
    print(
        f"ours: libvips {info['versions']['ours_libvips']} ({info['versions']['ours_jpeg_codec']}); "
        f"cli: {info['versions']['cli']}; ours-deb: libvips {info['versions'].get('ours_deb_libvips') or '–'}; "
        f"runners {', '.join(runners)}; load {info['machine']['load_before'][0]:.2f}",
        flush=True,
    )
    runs: list[Run] = []
    breakdowns: dict[str, dict[str, Any]] = {}
    try:
        for input_set in input_sets:
            print(f"{input_set.label}: {input_set.megapixels:,.0f} MP, {input_set.bytes / 1e6:,.0f} MB", flush=True)
            runs += benchmark_set(input_set, runners, args.reps, work, logs)
        if not args.no_breakdown:
            for input_set in input_sets:
                limit = 1 if input_set.name == "scan" else min(args.breakdown_jpegs, len(input_set.files))
                print(f"breakdown of ours on {input_set.name} ({limit} file(s), workers=1) …", flush=True)
                result = breakdown(input_set, work, limit)
                if "error" not in result:
                    result["cli_sequential_s"] = cli_baseline(input_set, work, limit)
                breakdowns[input_set.name] = result
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(work / "out", ignore_errors=True)
    rows = summarise(input_sets, runs, runners)
    text = table(rows)
    if breakdowns:
        text += "\n\n" + breakdown_table(breakdowns)
    print()
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"ingest-{stamp}.json"
    inputs = [
        {
            "name": s.name,
            "label": s.label,
            "path": str(s.path),
            "files": len(s.files),
            "workers": s.workers,
            "megapixels": round(s.megapixels, 1),
            "bytes": s.bytes,
            "rotated": sum(s.rotated),
        }
        for s in input_sets
    ]
    settings = {
        "reps": args.reps,
        "quality": QUALITY,
        "tile": TILE,
        "cli_save_args": SAVE_ARGS,
        "ours_env": {"IIIF_SERVER_CONFIG": "/dev/null"},
    }
    path.write_text(
        json.dumps(
            {
                **info,
                "settings": settings,
                "inputs": inputs,
                "summary": rows,
                "runs": [asdict(r) for r in runs],
                "breakdown": breakdowns,
                "table": text,
                "total_s": round(time.monotonic() - started, 1),
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    print(f"\nwrote {_shown(path)} ({time.monotonic() - started:.0f} s in all)")
    return 2 if any(r.problems for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
