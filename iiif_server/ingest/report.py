"""``iiif-server ingest`` and ``verify`` for people and scripts: progress, summary table, JSON.

After a batch, replaced masters are announced (``notify.notify``: cache purge, manifest Updates).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import click

from ..config import Settings
from ..errors import StoreUnavailable
from ..services import Services
from .batch import FAILED, REPLACED, Outcome, plan, run
from .destinations import destination_of
from .masters import Destination, NotUnderRoot, NotWritable
from .notify import notify, options_of


class Refused(click.ClickException):
    """A path argument that cannot be used: one line on stderr, exit status 2, nothing done."""

    exit_code = 2


def destination(settings: Settings) -> Destination:
    """Where masters go (``destinations.destination_of``); a source ingest cannot write to is refused as one line."""
    try:
        return destination_of(settings)
    except NotWritable as err:
        raise Refused(str(err)) from None


def folder_under_root(where: Destination, path: str, what: str) -> str:
    """``where.folder`` for a command-line argument, refused as one line (``what`` names the argument)."""
    try:
        return where.folder(path)
    except NotUnderRoot as err:
        raise Refused(f"{what} {err}") from None


def run_ingest(
    settings: Settings,
    sources: list[Path],
    into: str,
    replace: bool,
    workers: int,
    as_json: bool,
    echo: Callable[[str], None],
) -> int:
    """Ingest into the folder ``into`` under the root or the bucket's prefix (refused if it is not);
    returns how many files failed."""
    where = destination(settings)
    into = folder_under_root(where, into, "--into")
    jobs, refused = plan(sources, into)
    total = sum(job.size for job in jobs)
    outcomes: list[Outcome] = list(refused)
    finished = [0]

    def files_done(_: Outcome | None) -> str:
        return f"{finished[0]}/{len(jobs)} files"

    with click.progressbar(
        length=max(total, 1),
        label=f"ingesting {total / 1e6:,.0f} MB",
        show_eta=True,
        show_percent=True,
        item_show_func=files_done,
        file=sys.stderr,  # stdout may carry the JSON summary
    ) as bar:

        def done(outcome: Outcome) -> None:
            outcomes.append(outcome)
            finished[0] += 1
            bar.update(outcome.size, outcome)

        run(jobs, where, options_of(settings), replace, workers or settings.ingest.workers, on_done=done)
    replaced = [o.identifier for o in outcomes if o.status == REPLACED]
    touched = notify(Services(settings, memory_cache=False), replaced) if replaced else []
    counts = Counter(o.status for o in outcomes)
    if as_json:
        summary = {"counts": counts, "outcomes": [o.as_dict() for o in outcomes], "updated": touched}
        echo(json.dumps(summary, ensure_ascii=False))
    else:
        _table(outcomes, counts, touched, echo)
    return counts[FAILED]


def run_queue(
    settings: Settings, sources: list[Path], into: str, replace: bool, as_json: bool, echo: Callable[[str], None]
) -> None:
    """Plan here, convert on the workers: one job per file."""
    from .queue import enqueue

    jobs, refused = plan(
        [source.resolve() for source in sources], folder_under_root(destination(settings), into, "--into")
    )
    queued, waiting = enqueue(settings, jobs, replace)
    if as_json:
        refusals = [o.as_dict() for o in refused]
        echo(json.dumps({"queued": queued, "already_waiting": waiting, "refused": refusals}, ensure_ascii=False))
        return
    for outcome in refused:
        echo(f"not queued: {outcome.source}: {outcome.reason}")
    echo(f"queued {queued} file(s), {waiting} already waiting; `iiif-server worker` converts them")


def show_queue(settings: Settings, as_json: bool, echo: Callable[[str], None]) -> None:
    from .queue import status

    found = status(settings)
    if as_json:
        echo(json.dumps(found, ensure_ascii=False))
        return
    outcomes = ", ".join(f"{n} {kind}" for kind, n in sorted(found["outcomes"].items())) or "none yet"
    echo(f"queue {found['queue']}: {found['queued']} waiting, {found['running']} running, {found['finished']} done")
    echo(f"outcomes: {outcomes}")
    for failure in found["failed_files"]:
        echo(f"failed   {failure['source']}: {failure['reason']}")
    for crash in found["crashed"]:
        echo(f"crashed  {crash['job']}: {crash['error']}")


def _table(outcomes: list[Outcome], counts: Counter[str], touched: list[str], echo: Callable[[str], None]) -> None:
    width = max([len(o.identifier or o.source) for o in outcomes] + [10])
    echo(f"{'status':<9} {'master':<{width}} {'MB':>8} {'s':>6}  detail")
    for o in sorted(outcomes, key=lambda o: (o.status != FAILED, o.identifier or o.source)):
        echo(f"{o.status:<9} {o.identifier or o.source:<{width}} {o.size / 1e6:>8.1f} {o.seconds:>6.1f}  {o.reason}")
    summary = ", ".join(f"{counts[k]} {k}" for k in ("ingested", "replaced", "skipped", "failed"))
    echo(f"\n{summary}" + (f"; {len(touched)} manifest(s) updated for harvesters" if touched else ""))


def run_verify(settings: Settings, prefix: str, as_json: bool, echo: Callable[[str], None]) -> int:
    """Re-hash every recorded master (under ``prefix``); returns how many are missing or altered.

    Nothing to verify is an error, never a clean bill: no catalogue (nothing was ingested there: a
    wrong root or bucket?), or no recorded master under ``prefix``. In the bucket, every object is
    read whole (streamed).
    """
    where = destination(settings)
    folder = folder_under_root(where, prefix, "PATH")
    try:
        return _verify(where, folder, as_json, echo)
    except StoreUnavailable as err:
        raise click.ClickException(f"{where.name}: {err}") from None


def _verify(where: Destination, folder: str, as_json: bool, echo: Callable[[str], None]) -> int:
    if not where.recorded():
        raise click.ClickException(f"no fixity catalogue under {where.name}: nothing was ingested into it")
    masters = where.open()
    entries = masters.catalogue.entries(folder)
    if not entries:
        place = f"under {folder!r} " if folder else ""
        raise click.ClickException(f"no recorded master {place}in the fixity catalogue of {where.name}")
    problems: list[dict[str, str]] = []
    with click.progressbar(entries, label=f"verifying {len(entries)} masters", file=sys.stderr) as bar:
        for entry in bar:
            found = masters.check(entry)
            if found is not None:
                problems.append({"identifier": entry.identifier, "problem": found})
    if as_json:
        echo(json.dumps({"verified": len(entries), "problems": problems}, ensure_ascii=False))
    else:
        for problem in problems:
            echo(f"{problem['problem']:<18} {problem['identifier']}")
        echo(f"verified {len(entries)} masters: {len(problems)} problem(s)")
    return len(problems)
