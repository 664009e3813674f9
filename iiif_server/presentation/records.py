"""Collection export rows -> validated ``Record``s, with one ``Problem`` per bad row.

Pure: rows come in as dicts of strings (``exports.read_export`` does the file
I/O), the column names come from the configured ``ColumnMap``. A bad row never
stops the others: it is reported with its row number and the reason, and
skipped. Real exports are messy, so cells are stripped and NFC-normalised,
English may be missing (the Vietnamese is used, and the other way round),
extra columns are ignored, and rights URIs differing only in scheme or a
trailing slash are accepted in their canonical form.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

#: Presentation 3.0 §3.3.3 ``rights``: Creative Commons licences and marks, RightsStatements.org.
_CC = re.compile(r"https?://creativecommons\.org/(licenses|publicdomain)/([a-z-]+)/(\d\.\d)(/[a-z]{2,3})?/?", re.ASCII)
_RS = re.compile(
    r"https?://rightsstatements\.org/(vocab|page)/"
    r"(InC|InC-OW-EU|InC-EDU|InC-NC|InC-RUU|NoC-CR|NoC-NC|NoC-OKLR|NoC-US|CNE|UND|NKC)/(\d\.\d)/?",
    re.ASCII,
)
#: Record fields collections can group by.
GROUPABLE = ("object_type", "site", "heritage_rank", "period", "material")
_DATE = re.compile(r"(-?\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", re.ASCII)


class ColumnMap(BaseModel):
    """Which export column holds each record field (``[manifests.columns]`` in config.toml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inventory_number: str = "inventory_no"
    title_vi: str = "title_vi"
    title_en: str = "title_en"
    description_vi: str = "description_vi"
    description_en: str = "description_en"
    object_type: str = "object_type"
    heritage_rank: str = "heritage_rank"
    date: str = "date"
    period: str = "period"
    material: str = "material"
    dimensions: str = "dimensions_cm"
    site: str = "site"
    access: str = "access"
    rights: str = "rights"
    attribution_vi: str = "attribution_vi"
    attribution_en: str = "attribution_en"
    images: str = "images"

    def required(self) -> tuple[str, ...]:
        """Columns without which no row can be built."""
        return (self.inventory_number, self.images)


@dataclass(frozen=True, slots=True)
class Text:
    """A bilingual value. ``language_map`` never yields an empty string: a missing side borrows the other."""

    vi: str = ""
    en: str = ""

    def __bool__(self) -> bool:
        return bool(self.vi or self.en)

    def language_map(self) -> dict[str, list[str]]:
        if not self:
            return {}
        return {"vi": [self.vi or self.en], "en": [self.en or self.vi]}


@dataclass(frozen=True, slots=True)
class Record:
    row: int  # where the record is in the export: spreadsheet row (header = 1) or 1-based JSON position
    inventory_number: str
    title: Text
    description: Text
    object_type: str
    heritage_rank: str
    date: str
    nav_date: datetime | None
    period: str
    material: str
    dimensions: str
    site: str
    access: str
    rights: str
    attribution: Text
    images: tuple[str, ...]  # paths relative to the image root, NFC, in display order

    def field(self, name: str) -> str:
        """A grouping field's value by name (for collections by object type, site, ...)."""
        value = getattr(self, name, "")
        return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class Problem:
    row: int
    inventory_number: str
    reason: str

    def __str__(self) -> str:
        who = f" ({self.inventory_number})" if self.inventory_number else ""
        return f"row {self.row}{who}: {self.reason}"


@dataclass(slots=True)
class Parsed:
    records: list[Record] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def clean(value: object) -> str:
    """A cell as text: stripped, NFC (exports from macOS arrive in NFD), inner runs of spaces collapsed."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return " ".join(unicodedata.normalize("NFC", text).split())


def canonical_rights(uri: str, extra: Iterable[str] = ()) -> str | None:
    """The canonical form of a recognised rights URI, or None (spec: http, trailing slash)."""
    if uri in extra:
        return uri
    cc = _CC.fullmatch(uri)
    if cc:
        kind, name, version, port = cc.groups()
        return f"http://creativecommons.org/{kind}/{name}/{version}{port or ''}/"
    rs = _RS.fullmatch(uri)
    if rs:
        return f"http://rightsstatements.org/vocab/{rs.group(2)}/{rs.group(3)}/"
    return None


def parse_date(value: str) -> datetime | None:
    """``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` -> the start of that period, UTC (for ``navDate``).

    Raises ValueError for anything else: free-text periods belong in the period column.
    """
    match = _DATE.fullmatch(value)
    if not match:
        raise ValueError(f"malformed date {value!r} (expected YYYY, YYYY-MM or YYYY-MM-DD)")
    year, month, day = int(match.group(1)), int(match.group(2) or 1), int(match.group(3) or 1)
    if year < 1:
        raise ValueError(f"date {value!r} is before year 1; put it in the period column")
    try:
        return datetime(year, month, day, tzinfo=UTC)
    except ValueError:
        raise ValueError(f"malformed date {value!r} (no such day)") from None


def split_images(value: object) -> tuple[str, ...]:
    """``a.tif; b.tif`` (or a JSON list) -> paths in order, duplicates dropped."""
    parts = value if isinstance(value, list) else str(value or "").split(";")
    paths = (clean(part).strip("/ ") for part in parts)  # clean leaves " " as the only whitespace
    return tuple(dict.fromkeys(p for p in paths if p))


def missing_columns(header: Iterable[str], columns: ColumnMap) -> list[str]:
    present = {clean(name) for name in header}
    return [name for name in columns.required() if name not in present]


def parse_records(
    rows: Iterable[tuple[int, Mapping[str, object]]],
    columns: ColumnMap,
    extra_rights: Iterable[str] = (),
) -> Parsed:
    """Validate every row; the good ones become Records, each bad one one Problem."""
    extra = tuple(extra_rights)
    parsed = Parsed()
    first_seen: dict[str, int] = {}
    for row, raw in rows:
        cells = {clean(key): value for key, value in raw.items() if key is not None}

        def get(name: str, cells: dict[str, object] = cells) -> str:
            return clean(cells.get(name))

        inventory = get(columns.inventory_number)
        try:
            record = _record(row, inventory, get, cells.get(columns.images), columns, extra)
        except ValueError as err:
            parsed.problems.append(Problem(row, inventory, str(err)))
            continue
        if inventory in first_seen:
            parsed.problems.append(
                Problem(row, inventory, f"duplicate inventory number (first on row {first_seen[inventory]})")
            )
            continue
        first_seen[inventory] = row
        parsed.records.append(record)
    return parsed


def _record(
    row: int,
    inventory: str,
    get: Callable[[str], str],
    images_cell: object,
    columns: ColumnMap,
    extra_rights: tuple[str, ...],
) -> Record:
    if not inventory:
        raise ValueError(f"missing inventory number (column {columns.inventory_number!r})")
    if "/" in inventory or inventory in (".", ".."):
        raise ValueError("inventory number must not contain '/'")
    images = split_images(images_cell)
    if not images:
        raise ValueError(f"no image files listed (column {columns.images!r})")
    rights_cell = get(columns.rights)
    rights = ""
    if rights_cell:
        rights = canonical_rights(rights_cell, extra_rights) or ""
        if not rights:
            raise ValueError(f"unknown rights URI {rights_cell!r} (use a Creative Commons or RightsStatements.org URI)")
    date = get(columns.date)
    nav_date = parse_date(date) if date else None
    return Record(
        row=row,
        inventory_number=inventory,
        title=Text(get(columns.title_vi), get(columns.title_en)),
        description=Text(get(columns.description_vi), get(columns.description_en)),
        object_type=get(columns.object_type),
        heritage_rank=get(columns.heritage_rank),
        date=date,
        nav_date=nav_date,
        period=get(columns.period),
        material=get(columns.material),
        dimensions=get(columns.dimensions),
        site=get(columns.site),
        access=get(columns.access).lower(),
        rights=rights,
        attribution=Text(get(columns.attribution_vi), get(columns.attribution_en)),
        images=images,
    )
