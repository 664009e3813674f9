"""Collection export rows -> validated ``Record``s, with one ``Problem`` per bad row.

Pure: rows come in as dicts of strings (``exports.read_export`` does the file
I/O), the column names come from the configured ``ColumnMap``. A bad row never
stops the others: it is reported with its row number and the reason, and
skipped. Real exports are messy, so cells are stripped and NFC-normalised,
English may be missing (the value is then Vietnamese only: never copied under
``en``), extra columns are ignored, dates may be written the Vietnamese way
(``31/12/1886``, ``12/1886``, ``năm 1886``), and rights URIs differing only in
scheme or a trailing slash are accepted in their canonical form.
"""

from __future__ import annotations

import calendar
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
#: Dates, as (pattern, group numbers of year, month, day): ISO 8601 and the ways Vietnamese museums write them.
_DATES = (
    (re.compile(r"(-?\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", re.ASCII), (1, 2, 3)),  # 1886, 1886-12, 1886-12-31
    (re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4})", re.ASCII), (4, 3, 1)),  # 31/12/1886, 31.12.1886
    (re.compile(r"(\d{1,2})[/.-](\d{4})", re.ASCII), (2, 1, 0)),  # 12/1886
    # năm 1886, tháng 12 năm 1886, ngày 31 tháng 12 năm 1886 (cells are clean: single spaces)
    (re.compile(r"(?:(?:ngày ([0-9]{1,2}) )?tháng ([0-9]{1,2}) )?năm ([0-9]{1,4})", re.IGNORECASE), (3, 2, 1)),
)
DATE_FORMS = "YYYY, YYYY-MM, YYYY-MM-DD, DD/MM/YYYY, MM/YYYY or năm YYYY"


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
    """A bilingual value. ``language_map`` has only the languages given, never an empty string.

    A missing translation is left out, not filled with the other language: a Vietnamese
    title under ``en`` would be mislabelled, and IIIF clients fall back across languages
    by themselves (Presentation 3.0 §4.4).
    """

    vi: str = ""
    en: str = ""

    def __bool__(self) -> bool:
        return bool(self.vi or self.en)

    def language_map(self) -> dict[str, list[str]]:
        languages = {"vi": [self.vi], "en": [self.en]}
        return {language: values for language, values in languages.items() if values[0]}


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
    file: str = ""  # set when the row is not the export's (the vocabulary's)

    def __str__(self) -> str:
        where = f"{self.file} row" if self.file else "row"
        who = f" ({self.inventory_number})" if self.inventory_number else ""
        return f"{where} {self.row}{who}: {self.reason}"


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
    """A date as museums write it -> the start of that day, month or year, UTC (for ``navDate``).

    ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``, ``DD/MM/YYYY``, ``MM/YYYY`` (``/``, ``.`` or ``-``),
    ``năm YYYY``, ``tháng MM năm YYYY``, ``ngày DD tháng MM năm YYYY``. Raises ValueError for
    anything else (free-text periods belong in the period column) and for days that do not
    exist, saying which of the two it is.
    """
    for pattern, groups in _DATES:
        match = pattern.fullmatch(value)
        if match:
            year, month, day = (int(match.group(n) or 1) if n else 1 for n in groups)
            break
    else:
        raise ValueError(f"malformed date {value!r} (expected {DATE_FORMS})")
    if year < 1:
        raise ValueError(f"date {value!r} is before year 1; put it in the period column")
    if not 1 <= month <= 12:
        raise ValueError(f"date {value!r} is not a real date (there is no month {month})")
    days = calendar.monthrange(year, month)[1]
    if not 1 <= day <= days:
        raise ValueError(f"date {value!r} is not a real date ({year:04d}-{month:02d} has {days} days)")
    return datetime(year, month, day, tzinfo=UTC)


def split_images(value: object) -> tuple[str, ...]:
    """``a.tif; b.tif`` (or a JSON list) -> paths in order, duplicates dropped."""
    parts = value if isinstance(value, list) else str(value or "").split(";")
    paths = (clean(part).strip("/ ") for part in parts)  # clean leaves " " as the only whitespace
    return tuple(dict.fromkeys(p for p in paths if p))


def missing_columns(header: Iterable[str], columns: ColumnMap | Iterable[str]) -> list[str]:
    """Required columns (the map's, or the names given) that the header lacks, after cleaning."""
    present = {clean(name) for name in header}
    required = columns.required() if isinstance(columns, ColumnMap) else columns
    return [name for name in required if name not in present]


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
