"""A batch of scans -> masters under the image root or in the bucket: plan, convert in a process pool, record, report.

Nothing is lost and nothing is overwritten silently:
- a master is written to a temporary file (or key) and put in place in one step (``masters``:
  a rename, a checked server-side copy), so an interrupted run never leaves half a master under a real name;
- a file whose master already exists from the same original (same sha256) is skipped, so rerunning
  an interrupted batch finishes only the rest;
- a master made from a different original is replaced only with ``replace``: the old one is kept in
  ``.versions/`` and the replacement is recorded in the fixity catalogue;
- a file that cannot be converted is reported with its reason; the batch goes on.

``process`` is what one worker does for one file, in a pool here or on an RQ worker elsewhere.
"""

from __future__ import annotations

import os
import time
import unicodedata
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

from ..errors import StoreUnavailable
from .convert import EXTENSIONS, ConvertError, MasterOptions, to_master
from .fixity import VERSIONS_DIR, Entry, now, sha256_of
from .masters import Destination, PublishError, Taken, as_destination
from .masters import NotUnderRoot as NotUnderRoot  # where the report and the tests have always found them
from .masters import under_root as under_root

INGESTED, REPLACED, SKIPPED, FAILED = "ingested", "replaced", "skipped", "failed"


@dataclass(frozen=True, slots=True)
class Job:
    source: str  # absolute path of the scan
    identifier: str  # the master's path under the image root (NFC, "/"-separated, ".tif")
    size: int


@dataclass(frozen=True, slots=True)
class Outcome:
    source: str
    identifier: str
    status: str  # ingested | replaced | skipped | failed
    reason: str
    size: int
    seconds: float = 0.0
    width: int = 0
    height: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def master_name(relative: str) -> str:
    """``hiện vật/KH-0101 mặt trước.JPG`` -> ``hiện vật/KH-0101 mặt trước.tif``: NFC, so identifiers are predictable."""
    stem, _ = os.path.splitext(unicodedata.normalize("NFC", relative.replace(os.sep, "/")))
    return f"{stem}.tif"


def plan(sources: Iterable[Path], into: str = "") -> tuple[list[Job], list[Outcome]]:
    """Jobs for files and folder trees (layout kept relative to each folder); refusals as outcomes.

    ``into``: a folder under the image root, as ``under_root`` gives it.
    """
    prefix = master_name(into + "/x").rsplit("/", 1)[0].strip("/") if into.strip("/") else ""
    jobs: list[Job] = []
    refused: list[Outcome] = []
    claimed: dict[str, str] = {}
    for source in sources:
        source = source.resolve()
        if source.is_dir():
            found = sorted(_walk(source))
            pairs = [(path, os.path.relpath(path, source)) for path in found]
        elif source.is_file():
            pairs = [(source, source.name)]
        else:
            refused.append(Outcome(str(source), "", FAILED, "no such file or folder", 0))
            continue
        for path, relative in pairs:
            if os.path.splitext(path.name)[1].lower() not in EXTENSIONS:
                refused.append(Outcome(str(path), "", FAILED, "not an image file (unknown extension)", _size(path)))
                continue
            identifier = "/".join(p for p in (prefix, master_name(relative)) if p)
            if identifier in claimed:
                reason = f"same master name as {claimed[identifier]}"
                refused.append(Outcome(str(path), identifier, FAILED, reason, _size(path)))
                continue
            claimed[identifier] = str(path)
            jobs.append(Job(str(path), identifier, _size(path)))
    return jobs, refused


def process(job: Job, destination: Destination | str, options: MasterOptions, replace: bool) -> Outcome:
    """Make (or skip, or refuse) one master. Safe to run anywhere the destination is reachable, any number at once.

    ``destination``: where masters go (``destinations.destination_of``), or an image root's path.
    """
    started = time.monotonic()
    source = Path(job.source)

    def outcome(status: str, reason: str, width: int = 0, height: int = 0) -> Outcome:
        return Outcome(job.source, job.identifier, status, reason, job.size, time.monotonic() - started, width, height)

    try:
        size = source.stat().st_size
        if size == 0:
            return outcome(FAILED, "empty file (0 bytes)")
        # On a thread: with no master yet to compare against, the hash overlaps the conversion.
        source_hash = _hash_later(source)
    except OSError as err:
        return outcome(FAILED, f"cannot read: {err.strerror or err}")
    exists = f"--replace keeps it in {VERSIONS_DIR}/ and replaces it"
    try:
        masters = as_destination(destination).open()
        existing = masters.catalogue.get(job.identifier)
        current = masters.size(job.identifier)
        if current is not None:
            try:
                source_sha = source_hash.result()
            except ConvertError as err:
                return outcome(FAILED, str(err))
            if existing is not None and existing.source_sha256 == source_sha:
                if current == existing.master_size:
                    return outcome(SKIPPED, "already ingested from this original", existing.width, existing.height)
            elif not replace:
                why = "from a different original" if existing else "that ingest did not make"
                return outcome(FAILED, f"a master {why} already exists; {exists}")
        with masters.staging(job.identifier) as partial:
            converted = to_master(source, partial, options)
            source_sha = source_hash.result()
            published = masters.publish(job.identifier, partial, replacing=current is not None)
        entry = Entry(
            job.identifier,
            job.source,
            source_sha,
            size,
            published.sha256,
            published.size,
            converted.width,
            converted.height,
            "; ".join(converted.notes),
            now(),
        )
        masters.catalogue.record(entry, existing, published.previous_version)
    except ConvertError as err:
        return outcome(FAILED, str(err))
    except Taken:
        return outcome(FAILED, f"a master was put there by another ingest meanwhile; {exists}")
    except OSError as err:
        return outcome(FAILED, f"cannot write the master: {err.strerror or err}")
    except (PublishError, StoreUnavailable) as err:
        return outcome(FAILED, f"cannot write the master: {err}")
    kept = published.previous_version
    status = REPLACED if kept else INGESTED
    reason = f"previous master kept as {kept}" if kept else "; ".join(converted.notes)
    return outcome(status, reason, converted.width, converted.height)


def run(
    jobs: list[Job],
    destination: Destination | Path,
    options: MasterOptions,
    replace: bool = False,
    workers: int = 0,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Every job in a pool of ``workers`` processes (0: one per core); outcomes in completion order."""
    workers = workers or os.cpu_count() or 1
    where = as_destination(destination)
    where.open()  # created once here (a root, its catalogue): workers racing to create it would trip over its set-up
    outcomes: list[Outcome] = []
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            outcomes.append(process(job, where, options, replace))
            if on_done:
                on_done(outcomes[-1])
        return outcomes
    # spawn: a forked child would inherit libvips' threads and locks mid-flight
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(process, job, where, options, replace): job for job in jobs}
        for future in as_completed(futures):
            try:
                outcomes.append(future.result())
            except Exception as err:  # a worker died or broke: this file fails, the batch goes on
                job = futures[future]
                outcomes.append(Outcome(job.source, job.identifier, FAILED, f"worker error: {err}", job.size))
            if on_done:
                on_done(outcomes[-1])
    return outcomes


def _hash_later(path: Path) -> Future[str]:
    """sha256 of ``path`` on a thread (hashlib releases the GIL), alongside the conversion."""

    def digest() -> str:
        try:
            return sha256_of(path)
        except OSError as err:
            raise ConvertError(f"cannot read: {err.strerror or err}") from None

    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(digest)
    pool.shutdown(wait=False)
    return future


def _walk(folder: Path) -> Iterable[Path]:
    for here, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith("."):
                yield Path(here) / name


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
