"""Manifest build at scale: ``iiif-server manifests build`` on a synthetic export of many records and images.

One command (see bench/README.md)::

    .venv/bin/python bench/manifests_scale.py [--records 5000] [--images-per-record 3] [--work DIR]
                                              [--profile {none,cold,warm}]

It synthesises small but real image files with pyvips (varied dimensions, a mix of JPEGs and tiled pyramidal
TIFFs, in nested folders with Vietnamese names; reused on a rerun), writes a CSV export in the museums' format,
then runs the CLI as a subprocess four times on fresh state and cache folders: cold (empty cache and change
log), warm (nothing changed), warm with ``--validate``, and after editing the titles of 50 records. For each run
it reports wall time, the command's own build time, the child's peak RSS and the change activities it
published, prints a table and writes everything to ``bench/results/manifests-scale-<timestamp>.json``.

Image dimensions are read from the files by the server's own layout probing (no HTTP anywhere).
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import host

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
DEFAULT_WORK = BENCH / "images" / "manifests-scale"
BASE_URL = "https://iiif.example.org"
CLI = REPO / ".venv" / "bin" / "iiif-server"
PYTHON = REPO / ".venv" / "bin" / "python"
TOUCHED = 50  # records whose title run (c) edits
MIN_SIDE, MAX_SIDE = 300, 4000
COLUMNS = (
    "inventory_no",
    "title_vi",
    "title_en",
    "object_type",
    "heritage_rank",
    "date",
    "period",
    "material",
    "dimensions_cm",
    "site",
    "description_vi",
    "description_en",
    "access",
    "rights",
    "attribution_vi",
    "attribution_en",
    "images",
)


# ---------------------------------------------------------------- the synthetic collection


@dataclass(frozen=True)
class Kind:
    """An object type: export value, inventory code, image folder, (vi, en) nouns and materials, views."""

    value: str
    code: str
    folder: str
    weight: int
    nouns: tuple[tuple[str, str], ...]
    materials: tuple[tuple[str, str], ...]
    views: tuple[str, ...]


OBJECT_VIEWS = ("mặt trước", "mặt sau", "mặt bên", "chi tiết", "đáy")
PAGES = tuple(f"trang {n:02d}" for n in range(1, 6))
KINDS = (
    Kind(
        "hiện vật",
        "HV",
        "hiện vật",
        40,
        (
            ("Tượng thần", "Statue of a deity"),
            ("Trống đồng", "Bronze drum"),
            ("Rìu đồng", "Bronze axe"),
            ("Bình vôi", "Lime pot"),
            ("Ấn triện", "Seal"),
        ),
        (("đồng", "bronze"), ("đá sa thạch", "sandstone"), ("gỗ mít", "jackfruit wood")),
        OBJECT_VIEWS,
    ),
    Kind(
        "tư liệu",
        "TL",
        "tư liệu Hán Nôm",
        20,
        (
            ("Sắc phong", "Royal decree"),
            ("Địa bạ", "Land register"),
            ("Gia phả", "Family register"),
            ("Văn tự", "Deed"),
        ),
        (("giấy dó", "dó paper"), ("giấy", "paper")),
        PAGES,
    ),
    Kind(
        "gốm sứ",
        "GS",
        "gốm sứ",
        20,
        (("Bình gốm", "Ceramic vase"), ("Đĩa sứ men lam", "Blue-and-white dish"), ("Chén", "Bowl"), ("Hũ", "Jar")),
        (("gốm", "stoneware"), ("sứ men lam", "blue-glazed porcelain"), ("đất nung", "terracotta")),
        OBJECT_VIEWS,
    ),
    Kind(
        "tranh",
        "TR",
        "tranh ảnh",
        10,
        (("Tranh sơn mài", "Lacquer painting"), ("Tranh lụa", "Silk painting"), ("Ảnh tư liệu", "Archival photo")),
        (("sơn mài", "lacquer"), ("lụa", "silk"), ("giấy ảnh", "photographic paper")),
        ("toàn cảnh", "chi tiết", "mặt sau", "khung", "chữ ký"),
    ),
    Kind(
        "di tích kiến trúc",
        "DT",
        "di tích",
        10,
        (("Tháp", "Tower"), ("Đình", "Communal house"), ("Cổng", "Gate"), ("Lăng", "Mausoleum")),
        (("gạch", "brick"), ("đá ong", "laterite"), ("gỗ lim", "ironwood")),
        ("toàn cảnh", "mặt đông", "mặt tây", "nội thất", "chi tiết"),
    ),
)
SITES = (
    "Kho Bảo tàng",
    "Tháp Bà Ponagar",
    "Thành cổ Diên Khánh",
    "Cam Ranh",
    "Ninh Hòa",
    "Vạn Ninh",
    "Khánh Sơn",
    "Khánh Vĩnh",
    "Nha Trang",
    "Hòn Khói",
    "Bình Ba",
    "Đầm Môn",
)
RANKS = ("Bảo vật quốc gia", "Hiện vật trưng bày", "Hiện vật lưu kho", "Di tích quốc gia", "Di tích cấp tỉnh")
PERIODS = ("văn hóa Đông Sơn", "văn hóa Sa Huỳnh", "Chăm Pa, thế kỷ X", "triều Nguyễn", "thời Pháp thuộc", "")
RIGHTS = (
    ("http://creativecommons.org/publicdomain/mark/1.0/", 40),
    ("http://creativecommons.org/licenses/by/4.0/", 30),
    ("https://creativecommons.org/licenses/by-nc/4.0", 15),  # canonicalised by the parser
    ("http://rightsstatements.org/vocab/InC/1.0/", 15),
)
RECORDS_PER_LOT = 40


@dataclass(frozen=True)
class ImageSpec:
    """One synthetic image: path under the root, size, and how it is stored."""

    path: str
    width: int
    height: int
    storage: str  # "jpeg" | "tiff-pages" (pyramid as pages) | "tiff-subifd" (pyramid as sub-IFDs)


def image_spec(relative_stem: str, seed: str) -> ImageSpec:
    """Deterministic size and storage for one file (same seed, same file, on every rerun)."""
    rng = random.Random(seed)
    width, height = rng.randint(MIN_SIDE, MAX_SIDE), rng.randint(MIN_SIDE, MAX_SIDE)
    roll = rng.random()
    storage = "jpeg" if roll < 0.6 else "tiff-pages" if roll < 0.9 else "tiff-subifd"
    return ImageSpec(f"{relative_stem}.{'jpg' if storage == 'jpeg' else 'tif'}", width, height, storage)


def synthesise(records: int, images_per_record: int, seed: int = 1) -> tuple[list[dict[str, str]], list[ImageSpec]]:
    """The export's rows and the images they name, deterministic for a given size and seed."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    images: list[ImageSpec] = []
    per_kind: Counter[str] = Counter()
    for number in range(1, records + 1):
        kind = rng.choices(KINDS, weights=[k.weight for k in KINDS])[0]
        per_kind[kind.code] += 1
        serial = per_kind[kind.code]
        inventory = f"KH-{kind.code}-{serial:05d}"
        site = rng.choice(SITES)
        noun_vi, noun_en = rng.choice(kind.nouns)
        period = rng.choice(PERIODS)
        material, material_en = rng.choice(kind.materials)
        folder = f"{kind.folder}/lô {(serial - 1) // RECORDS_PER_LOT + 1:03d}"
        views = [kind.views[k] if k < len(kind.views) else f"ảnh {k + 1}" for k in range(images_per_record)]
        specs = [image_spec(f"{folder}/{inventory} {view}", f"{seed}|{inventory}|{view}") for view in views]
        images.extend(specs)
        roll = rng.random()
        access = "restricted" if roll < 0.05 else "internal" if roll < 0.06 else "public"
        year = rng.randint(1700, 1990)
        date_roll = rng.random()
        date = (
            f"{year}"
            if date_roll < 0.35
            else f"{year}-{rng.randint(1, 12):02d}"
            if date_roll < 0.45
            else f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            if date_roll < 0.5
            else ""
        )
        size = " x ".join(str(rng.randint(5, 200)) for _ in range(rng.choice((2, 3))))
        rows.append(
            {
                "inventory_no": inventory,
                "title_vi": f"{noun_vi} {site} số {serial}",
                "title_en": f"{noun_en} from {site}, no. {serial}",
                "object_type": kind.value,
                "heritage_rank": rng.choice(RANKS),
                "date": date,
                "period": period,
                "material": material,
                "dimensions_cm": size if kind.code not in ("DT", "TL") else "",
                "site": site,
                "description_vi": (
                    f"{noun_vi} bằng {material}, sưu tầm tại {site}{f' ({period})' if period else ''}. "
                    f"Hồ sơ số {number}; ảnh tổng hợp dùng để đo hiệu năng."
                ),
                "description_en": (
                    f"{noun_en} in {material_en}, collected at {site}. Record {number}; synthetic benchmark images."
                ),
                "access": access,
                "rights": rng.choices([r for r, _ in RIGHTS], weights=[w for _, w in RIGHTS])[0],
                "attribution_vi": "Bảo tàng Di sản tỉnh Khánh Hòa",
                "attribution_en": "Khánh Hòa Provincial Heritage Museum",
                "images": ";".join(spec.path for spec in specs),
            }
        )
    return rows, images


def touch_titles(rows: list[dict[str, str]], count: int) -> list[str]:
    """Edit the titles of ``count`` public records spread over the export; returns their inventory numbers."""
    public = [row for row in rows if row["access"] == "public"]
    chosen = public[:: max(1, len(public) // count)][:count]
    for row in chosen:
        row["title_vi"] += " (đã hiệu đính)"
        row["title_en"] += " (revised)"
    return [row["inventory_no"] for row in chosen]


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    """Write the export atomically (the build must never see half a file)."""
    partial = path.with_name(path.name + ".part")
    with partial.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, path)


# ---------------------------------------------------------------- image files


def _init_worker() -> None:
    import pyvips

    pyvips.concurrency_set(1)  # one libvips thread per pool process: the pool is the parallelism


def make_image(task: tuple[str, ImageSpec]) -> int:
    """Write one image (black pixels: real headers and pyramid, almost no entropy); returns its size in bytes."""
    import pyvips

    root, spec = task
    path = Path(root) / spec.path
    partial = path.with_name(path.name + ".part")
    image = pyvips.Image.black(spec.width, spec.height, bands=3 if spec.storage == "jpeg" else 1)
    if spec.storage == "jpeg":
        image.jpegsave(str(partial), Q=50)
    else:
        image.tiffsave(
            str(partial),
            tile=True,
            tile_width=256,
            tile_height=256,
            pyramid=True,
            subifd=spec.storage == "tiff-subifd",
            compression="deflate",
        )
    os.replace(partial, path)
    return path.stat().st_size


def ensure_images(root: Path, specs: Sequence[ImageSpec], processes: int) -> dict[str, Any]:
    """Create the missing files (a pool of ``processes``); existing ones are kept. Returns what was done."""
    started = time.monotonic()
    missing = [spec for spec in specs if not (root / spec.path).is_file()]
    for folder in sorted({str(Path(spec.path).parent) for spec in missing}):
        (root / folder).mkdir(parents=True, exist_ok=True)
    written = 0
    if missing:
        print(f"synthesising {len(missing)} of {len(specs)} images under {root} ({processes} processes) ...")
        context = multiprocessing.get_context("spawn")  # no libvips state inherited through fork
        with context.Pool(processes, initializer=_init_worker) as pool:
            tasks = ((str(root), spec) for spec in missing)
            for done, size in enumerate(pool.imap_unordered(make_image, tasks, chunksize=32), start=1):
                written += size
                if done % 1000 == 0 or done == len(missing):
                    print(f"  {done}/{len(missing)} images, {time.monotonic() - started:.0f} s", flush=True)
    seconds = time.monotonic() - started
    total = sum((root / spec.path).stat().st_size for spec in specs)
    print(f"images: {len(specs)} files, {len(missing)} new, {total / 2**20:.0f} MB, {seconds:.1f} s")
    return {
        "files": len(specs),
        "new": len(missing),
        "jpeg": sum(1 for s in specs if s.storage == "jpeg"),
        "tiff_pages": sum(1 for s in specs if s.storage == "tiff-pages"),
        "tiff_subifd": sum(1 for s in specs if s.storage == "tiff-subifd"),
        "megapixels": round(sum(s.width * s.height for s in specs) / 1e6),
        "bytes": total,
        "seconds": round(seconds, 2),
    }


# ---------------------------------------------------------------- running the build


@dataclass
class Run:
    """One ``manifests build``: what the parent measured and what the command said."""

    name: str
    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    exit_code: int = 0
    build_s: float | None = None  # the command's own "in X s" (catalogue build only)
    manifests: int | None = None
    collections: int | None = None
    withheld: int | None = None
    skipped: int | None = None
    changes: str = ""  # the command's "changes published:" detail
    activities: dict[str, int] = field(default_factory=dict)  # "Update Manifest" -> n, from the change log
    validated: int | None = None
    invalid: int | None = None
    files_written: int | None = None
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage, from output line arrival times
    load_before: float = 0.0  # 1-minute load average: other work on the machine skews the figures
    log: str = ""


PATTERNS = {
    "built": re.compile(r"built (\d+) manifests and (\d+) collections from .* in ([\d.]+) s"),
    "withheld": re.compile(r"^withheld (\d+) "),
    "skipped": re.compile(r"^skipped (\d+) row"),
    "changes": re.compile(r"^changes published: (.*) \(stream: (\d+) activities\)"),
    "validated": re.compile(r"^validated (\d+) documents .*: (\d+) invalid"),
    "wrote": re.compile(r"^wrote (\d+) files"),
}


def child_env(state: Path, cache: Path) -> dict[str, str]:
    """Defaults only (no config file, no inherited IIIF_SERVER_* settings), with our own state and cache."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("IIIF_SERVER_")}
    env.update(
        IIIF_SERVER_CONFIG="/dev/null",
        IIIF_SERVER_MANIFESTS_STATE_DIR=str(state),
        IIIF_SERVER_CACHE_DISK_DIR=str(cache),
        PYTHONUNBUFFERED="1",  # lines arrive as printed: their arrival times split the run into stages
    )
    return env


def stream_index(state: Path) -> int:
    """How many activities the change log holds (0 if it does not exist yet)."""
    path = state / "changes.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT COUNT(*) FROM activity").fetchone()[0]


def activities_since(state: Path, start: int) -> dict[str, int]:
    """Activities appended since stream position ``start``, by "<type> <object type>"."""
    path = state / "changes.sqlite"
    if not path.exists():
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT type, object_type, COUNT(*) FROM activity WHERE idx >= ? GROUP BY 1, 2 ORDER BY 1, 2", (start,)
        ).fetchall()
    return {f"{kind} {object_type}": count for kind, object_type, count in rows}


def lines_with_times(proc: subprocess.Popen, started: float) -> Iterator[tuple[float, str]]:
    """The child's output lines, each with the seconds since start at which it arrived."""
    assert proc.stdout is not None
    for raw in proc.stdout:
        yield time.monotonic() - started, raw.decode("utf-8", "replace").rstrip("\n")


def build_command(csv_path: Path, root: Path, out: Path, validate: bool) -> list[str]:
    args = ["manifests", "build", "--source", str(csv_path), "--images", str(root), "--out", str(out)]
    return args + ["--base-url", BASE_URL] + (["--validate"] if validate else [])


def run_build(name: str, args: list[str], state: Path, cache: Path, logs: Path, prefix: Sequence[str] = ()) -> Run:
    """Run the CLI once; wall time, CPU time and peak RSS are the child's own (``wait4``)."""
    run = Run(name, load_before=round(os.getloadavg()[0], 2))
    before = stream_index(state)
    command = [*prefix, *args] if prefix else [str(CLI), *args]
    started = time.monotonic()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=child_env(state, cache))
    output: list[str] = []
    marks: list[tuple[str, float]] = []
    for at, line in lines_with_times(proc, started):
        output.append(line)
        for key, pattern in PATTERNS.items():
            match = pattern.search(line)
            if not match:
                continue
            marks.append((key, at))
            if key == "built":
                run.manifests, run.collections, run.build_s = int(match[1]), int(match[2]), float(match[3])
            elif key == "withheld":
                run.withheld = int(match[1])
            elif key == "skipped":
                run.skipped = int(match[1])
            elif key == "changes":
                run.changes = match[1]
            elif key == "validated":
                run.validated, run.invalid = int(match[1]), int(match[2])
            elif key == "wrote":
                run.files_written = int(match[1])
    _, status, usage = os.wait4(proc.pid, 0)
    run.wall_s = round(time.monotonic() - started, 2)
    proc.returncode = run.exit_code = os.waitstatus_to_exitcode(status)
    run.cpu_s = round(usage.ru_utime + usage.ru_stime, 2)
    run.peak_rss_mb = round(usage.ru_maxrss / 1024, 1)  # Linux: KiB
    run.activities = activities_since(state, before)
    run.stages = stage_times(marks, run.wall_s)
    log = logs / f"{name}.log"
    log.write_text("\n".join(output) + "\n", encoding="utf-8")
    run.log = str(log)
    if run.exit_code != 0 or run.build_s is None:
        print(f"  {name}: exit {run.exit_code}; last lines of {log}:\n    " + "\n    ".join(output[-15:]))
    return run


def stage_times(marks: list[tuple[str, float]], wall: float) -> dict[str, float]:
    """Seconds from start to the build summary (imports + build), then between the summary lines."""
    times = dict(marks)
    stages: dict[str, float] = {}
    if "built" in times:
        stages["start+build"] = round(times["built"], 2)
    if "changes" in times and "built" in times:
        stages["change log"] = round(times["changes"] - times["built"], 2)
    if "validated" in times and "changes" in times:
        stages["validate"] = round(times["validated"] - times["changes"], 2)
    previous = times.get("validated", times.get("changes"))
    if "wrote" in times and previous is not None:
        stages["write tree"] = round(times["wrote"] - previous, 2)
    if "wrote" in times:
        stages["exit"] = round(wall - times["wrote"], 2)
    return stages


def profile_run(which: str, work: Path, args: list[str], state: Path, cache: Path, logs: Path) -> dict[str, Any]:
    """One build under cProfile (cold: fresh state and cache), with the top 25 functions by cumulative time."""
    import io
    import pstats

    if which == "cold":
        state, cache = fresh(work / "profile-state"), fresh(work / "profile-cache")
    output = work / f"profile-{which}.prof"
    prefix = [str(PYTHON), "-m", "cProfile", "-o", str(output), "-m", "iiif_server"]
    run = run_build(f"profile-{which}", args, state, cache, logs, prefix=prefix)
    text = io.StringIO()
    pstats.Stats(str(output), stream=text).sort_stats("cumulative").print_stats(25)
    body = text.getvalue()
    top = body[body.find("   ncalls") :] if "   ncalls" in body else body
    return {"run": asdict(run), "prof": str(output), "top25_cumulative": top}


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# ---------------------------------------------------------------- report


def fmt(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "?"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table(runs: Sequence[Run]) -> str:
    head = "| run | wall s | build s | peak RSS MB | manifests | collections | changes |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---|"]
    for run in runs:
        changes = ", ".join(f"{n} {kind}" for kind, n in run.activities.items()) or "none"
        lines.append(
            f"| {run.name} | {run.wall_s:.1f} | {fmt(run.build_s)} | {run.peak_rss_mb:.0f} | {fmt(run.manifests)} "
            f"| {fmt(run.collections)} | {changes} |"
        )
    return "\n".join(lines)


def stage_table(runs: Sequence[Run]) -> str:
    names = ["start+build", "change log", "validate", "write tree", "exit"]
    lines = ["| run | CPU s | " + " | ".join(names) + " | load before |", "|---|---:|" + "---:|" * (len(names) + 1)]
    for run in runs:
        cells = [fmt(run.stages.get(name), 2) if name in run.stages else "" for name in names]
        lines.append(f"| {run.name} | {run.cpu_s:.1f} | " + " | ".join(cells) + f" | {run.load_before:.1f} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return host.describe(REPO, PYTHON)


def expectations(runs: dict[str, Run], touched: int) -> list[str]:
    """What should hold; each failed expectation is one line."""
    failed = []
    for run in runs.values():
        if run.exit_code != 0 or run.build_s is None:
            failed.append(f"{run.name}: exit {run.exit_code}, no summary")
        if run.skipped:
            failed.append(f"{run.name}: {run.skipped} rows skipped")
    for name in ("warm", "warm+validate"):
        if name in runs and runs[name].activities:
            failed.append(f"{name}: expected no change activities, got {runs[name].activities}")
    if "touched" in runs and runs["touched"].activities.get("Update Manifest") != touched:
        failed.append(f"touched: expected {touched} Update Manifest, got {runs['touched'].activities}")
    if "warm+validate" in runs and runs["warm+validate"].invalid:
        failed.append(f"warm+validate: {runs['warm+validate'].invalid} invalid documents")
    return failed


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=5000, help="records in the export (default 5000)")
    parser.add_argument("--images-per-record", type=int, default=3, help="images per record (default 3)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help=f"working folder (default {DEFAULT_WORK})")
    parser.add_argument(
        "--processes", type=int, default=os.cpu_count() or 1, help="image synthesis processes (default: CPU count)"
    )
    parser.add_argument(
        "--profile", choices=("none", "cold", "warm"), default="none", help="also run one build under cProfile"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not CLI.exists():
        print(f"{CLI} not found: install the project in .venv (pip install -e .)", file=sys.stderr)
        return 1
    work = args.work.resolve()
    root = work / "images"
    root.mkdir(parents=True, exist_ok=True)
    rows, specs = synthesise(args.records, args.images_per_record)
    generation = ensure_images(root, specs, args.processes)

    csv_path = work / "collection.csv"
    write_csv(csv_path, rows)
    access = Counter(row["access"] for row in rows)
    print(f"export: {csv_path} ({len(rows)} records: {dict(access)})")

    state, cache, out, logs = (fresh(work / name) for name in ("state", "cache", "out", "logs"))
    plain = build_command(csv_path, root, out, validate=False)
    runs: dict[str, Run] = {}
    checked = build_command(csv_path, root, out, validate=True)
    for name, command in (("cold", plain), ("warm", plain), ("warm+validate", checked)):
        print(f"run {name} ...", flush=True)
        runs[name] = run_build(name, command, state, cache, logs)
    touched = touch_titles(rows, TOUCHED)
    write_csv(csv_path, rows)
    print(f"run touched ({len(touched)} titles edited) ...", flush=True)
    runs["touched"] = run_build("touched", plain, state, cache, logs)

    profile = None
    if args.profile != "none":
        print(f"run profile-{args.profile} (cProfile) ...", flush=True)
        profile = profile_run(args.profile, work, plain, state, cache, logs)

    ordered = list(runs.values())
    report = table(ordered) + "\n\nStages (seconds, from the arrival times of the command's summary lines):\n\n"
    report += stage_table(ordered)
    validate = runs["warm+validate"].stages.get("validate")
    if validate is not None:
        report += (
            f"\n\nSchema validation of {runs['warm+validate'].validated} documents: {validate:.1f} s "
            f"(wall difference to warm: {runs['warm+validate'].wall_s - runs['warm'].wall_s:+.1f} s)"
        )
    print()
    print(report)
    if profile is not None:
        print(f"\nprofile ({profile['prof']}), top 25 by cumulative time:\n{profile['top25_cumulative']}")
    failed = expectations(runs, len(touched))
    for line in failed:
        print(f"UNEXPECTED: {line}", file=sys.stderr)

    RESULTS.mkdir(parents=True, exist_ok=True)
    result = RESULTS / f"manifests-scale-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {
            "records": args.records,
            "images_per_record": args.images_per_record,
            "work": str(work),
            "access": dict(access),
            "touched": touched,
            "command": [str(CLI), *plain],
            "env": {k: v for k, v in child_env(state, cache).items() if k.startswith(("IIIF_SERVER_", "PYTHON"))},
        },
        "generation": generation,
        "runs": [asdict(run) for run in ordered],
        "profile": profile,
        "unexpected": failed,
        "table": report,
    }
    result.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {result}")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
