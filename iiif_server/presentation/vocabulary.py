"""The museum's English for its controlled vocabularies: (field, Vietnamese value) -> English.

Pure: rows come from ``exports.read_export`` (a CSV with the columns ``field``, ``vi``,
``en`` beside the export), cleaned like the export's cells. Object types, sites,
materials, heritage ranks and periods are Vietnamese terms in the export; a term the
vocabulary translates gets its English wherever a label or metadata value is built
from it, and one it does not stays Vietnamese only, never copied under ``en``.
Terms match whatever their case; ``*`` in ``field`` translates a term in any field.
A bad row is reported with its row number and skipped, like an export row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .records import GROUPABLE, Problem, Record, Text, clean

#: The fields whose values are controlled terms (those collections group by).
FIELDS = GROUPABLE
ANY = "*"
COLUMNS = ("field", "vi", "en")
FILE = "vocabulary.csv"  # looked for beside the export unless [manifests] vocabulary names a file


@dataclass(frozen=True, slots=True)
class Vocabulary:
    terms: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (field or "*", casefolded vi) -> en

    def english(self, name: str, value: str) -> str:
        """The English of a field's value, or "".

        A ``;``-separated list (``gạch; đá sa thạch``) not listed as a whole is translated
        term by term, and only if every term is: half a translation would mix languages.
        """
        whole = self._term(name, value)
        if whole or ";" not in value:
            return whole
        parts = [self._term(name, part) for part in (clean(p) for p in value.split(";")) if part]
        return "; ".join(parts) if parts and all(parts) else ""

    def text(self, name: str, value: str) -> Text:
        """A field's value as a label: its Vietnamese, and its English when the vocabulary has it."""
        return Text(value, self.english(name, value))

    def translations(self, record: Record) -> tuple[str, ...]:
        """The English of a record's terms: what its manifest depends on besides the record."""
        return tuple(self.english(name, record.field(name)) for name in FIELDS)

    def _term(self, name: str, value: str) -> str:
        key = value.casefold()
        return self.terms.get((name, key)) or self.terms.get((ANY, key), "")


@dataclass(slots=True)
class ParsedVocabulary:
    vocabulary: Vocabulary
    problems: list[Problem]


def parse_vocabulary(rows: Iterable[tuple[int, Mapping[str, object]]], file: str = FILE) -> ParsedVocabulary:
    """Every row with a field, a Vietnamese term and its English becomes a term.

    A row without English is a term not translated yet, skipped quietly; an unknown field,
    a missing Vietnamese term or a second, different English for a term is a Problem
    naming ``file`` and the row (the first translation is kept).
    """
    terms: dict[tuple[str, str], str] = {}
    first: dict[tuple[str, str], int] = {}
    problems: list[Problem] = []
    for row, raw in rows:
        cells = {clean(key): clean(value) for key, value in raw.items() if key is not None}
        name, vi, en = cells.get("field", "").lower(), cells.get("vi", ""), cells.get("en", "")
        reason = ""
        if name not in (*FIELDS, ANY):
            reason = f"unknown field {name!r} (use {', '.join(FIELDS)} or {ANY} for any)"
        elif not vi:
            reason = "no Vietnamese term (column 'vi')"
        elif en:
            key = (name, vi.casefold())
            if key not in terms:
                terms[key], first[key] = en, row
            elif terms[key] != en:
                reason = f"{vi!r} is already translated on row {first[key]} (as {terms[key]!r})"
        if reason:
            problems.append(Problem(row, "", reason, file))
    return ParsedVocabulary(Vocabulary(terms), problems)
