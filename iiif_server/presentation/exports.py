"""Read a collection export file (CSV or JSON) into numbered rows for ``records.parse_records``.

CSV: UTF-8 (an Excel byte-order mark is skipped), comma-separated, first line
the header; a row's number is its spreadsheet row (header = row 1), so staff
find it at once. JSON: a list of objects with the same keys as the CSV
columns (or ``{"records": [...]}``); a record's number is its 1-based
position. ``images`` may be a list there.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class Export:
    header: tuple[str, ...]
    rows: list[tuple[int, Mapping[str, object]]]


def read_export(path: Path, what: str = "collection export") -> Export:
    """The whole export (or another table, such as the vocabulary: ``what``, for errors).

    A file that cannot be read at all is a ConfigError naming it.
    """
    try:
        if path.suffix.lower() == ".json":
            return _read_json(path, what)
        return _read_csv(path)
    except (OSError, UnicodeDecodeError, csv.Error, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read {what} {path}: {err}") from None


def _read_csv(path: Path) -> Export:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        rows: list[tuple[int, Mapping[str, object]]] = []
        # One spreadsheet row per record, blank ones included; a quoted cell may span several lines.
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue  # blank line
            record: dict[str, object] = dict.fromkeys(header)
            record.update(zip(header, cells, strict=False))  # cells beyond the header are ignored
            rows.append((number, record))
        return Export(tuple(header), rows)


def _read_json(path: Path, what: str) -> Export:
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    if isinstance(data, dict):
        data = data.get("records")
    if not isinstance(data, list):
        raise ConfigError(f"{what} {path}: expected a list of records or {{'records': [...]}}")
    rows: list[tuple[int, Mapping[str, object]]] = []
    header: dict[str, None] = {}
    for index, item in enumerate(data, start=1):
        if not isinstance(item, dict):
            item = {}  # reported by the record parser as a row with no inventory number
        header.update(dict.fromkeys(str(key) for key in item))
        rows.append((index, item))
    return Export(tuple(header), rows)
