"""``iiif-server access log``: the audit log for people, as a table, CSV or JSON.

Times are UTC (ISO 8601 with ``Z``), as stored; ``--since`` takes a UTC date or time, or an age.
In the table, control characters in a value are shown escaped, so a crafted URL cannot rewrite
the terminal; CSV and JSON carry the values as they are (their quoting keeps them apart).
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import click

from ..config import Settings
from .audit import Record, audit_path, query

_AGE = re.compile(r"(\d+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
COLUMNS = ("time", "user", "image", "address", "request")


class Refused(click.ClickException):
    """A bad argument: one line on stderr, exit status 2 (as ``ingest --into``)."""

    exit_code = 2


def parse_since(text: str, now: float | None = None) -> float:
    """UNIX seconds from ``7d``/``12h``/``30m``/``45s`` (ago) or an ISO date or time (UTC unless it says)."""
    text = text.strip()
    age = _AGE.fullmatch(text)
    if age:
        return (time.time() if now is None else now) - int(age[1]) * _UNIT[age[2]]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since {text!r}: give a date (2026-11-01), a UTC time (2026-11-01T08:30) or an age (7d, 12h)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def run_log(
    settings: Settings, since: str | None, user: str | None, image: str | None, fmt: str, echo: Callable[..., None]
) -> int:
    """Print the matching records in ``fmt``; the number printed. A bad ``since`` is ``Refused``."""
    try:
        start = parse_since(since) if since else None
    except ValueError as err:
        raise Refused(str(err)) from None
    path = audit_path(settings)
    if not path.exists():
        echo(f"no audit log at {path} yet: nothing recorded", err=True)
        return 0
    records = query(path, since=start, user=user, image=image)
    echo(render(records, fmt), nl=False)
    if not records:
        echo("no records match", err=True)
    return len(records)


def render(records: list[Record], fmt: str) -> str:
    rows = [(iso(r.at), r.user, r.image, r.address, r.request) for r in records]
    if fmt == "json":
        return json.dumps([dict(zip(COLUMNS, row, strict=True)) for row in rows], ensure_ascii=False, indent=1) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)
        return out.getvalue()
    if not rows:
        return ""
    shown = [COLUMNS, *([_printable(value) for value in row] for row in rows)]
    widths = [max(len(row[i]) for row in shown) for i in range(len(COLUMNS) - 1)]
    return "".join(
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=False)) + "  " + row[-1] + "\n"
        for row in shown
    )


def _printable(value: str) -> str:
    if value.isprintable():
        return value
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in value)
