"""``iiif-server manifests build``: build with a progress bar, then say what was built and skipped.

Staff read the summary to fix their export: every skipped row is listed with its
row number and reason, withheld records with why, then the changes published.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import click

from ..config import Settings
from ..services import Services
from .catalogue import DeletionRefused, Snapshot
from .publish import write_tree
from .validate import problems


def run_build(
    settings: Settings,
    out: Path | None,
    base: str,
    validate: bool,
    echo: Callable[[str], None],
    force: bool = False,
) -> int:
    """Build (and write, and validate); returns how many rows or documents failed.

    Raises DeletionRefused after the summary (whose skipped rows usually say why) if the build
    would delete too many manifests at once and ``force`` is not given; nothing is written then.
    """
    catalogue = Services(settings, memory_cache=False).catalogue
    before = catalogue.changes.count() if catalogue.changes else 0
    started = time.monotonic()
    with click.progressbar(length=1, label="building manifests", show_pos=True, show_eta=True) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = total
            bar.update(done - bar.pos)

        try:
            snapshot, refused = catalogue.build(progress=progress, force=force), None
        except DeletionRefused as error:
            snapshot, refused = error.snapshot, error
    seconds = time.monotonic() - started
    echo(
        f"built {snapshot.manifests} manifests and {snapshot.collections} collections "
        f"from {settings.manifests.source} in {seconds:.1f} s"
    )
    _summary(snapshot, echo)
    failed = len(snapshot.problems)
    if catalogue.changes is not None:
        added = catalogue.changes.activities(before, max(0, catalogue.changes.count() - before))
        kinds = Counter(a.type for a in added)
        detail = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "none"
        echo(f"changes published: {detail} (stream: {catalogue.changes.count()} activities)")
    if refused is not None:
        raise refused
    if validate:
        invalid = _validate(snapshot, base or "https://iiif.invalid", echo)
        failed += invalid
    if out is not None:
        homepage = bool(settings.manifests.item_homepage)  # else the live server's viewer: not in the tree
        count = write_tree(snapshot, out, base, catalogue.changes, settings.manifests.page_size, homepage)
        echo(f"wrote {count} files under {out} for {base}/")
    return failed


def _summary(snapshot: Snapshot, echo: Callable[[str], None]) -> None:
    if snapshot.withheld:
        echo(f"withheld {len(snapshot.withheld)} (access level not published, or an image hidden):")
        for record, reason in snapshot.withheld:
            echo(f"  row {record.row} ({record.inventory_number}): {reason}")
    if snapshot.problems:
        echo(f"skipped {len(snapshot.problems)} row(s):")
        for problem in snapshot.problems:
            echo(f"  {problem}")
    else:
        echo("skipped 0 rows")


def _validate(snapshot: Snapshot, base: str, echo: Callable[[str], None]) -> int:
    invalid = 0
    for document in snapshot.documents.values():
        found = problems(json.loads(document.render(base)))
        if found:
            invalid += 1
            echo(f"  invalid {document.path}: {found[0]}")
    echo(f"validated {len(snapshot.documents)} documents against the Presentation 3.0 schema: {invalid} invalid")
    return invalid
