"""Search and facets over the published records (CONTRACT STUB: a linear scan to code against;
to be replaced by the SQLite FTS5 index, same interface).

Vietnamese folding: "trong dong", "Trống Đồng" and "trống đồng" are one query (``fold``).
"""

from __future__ import annotations

import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..presentation.catalogue import Snapshot
from ..presentation.records import Record, Text
from ..presentation.vocabulary import Vocabulary
from .urls import FACETS

#: Record fields with facets, in display order.
FACET_FIELDS = tuple(FACETS.values())


def fold(text: str) -> str:
    """Lower case without diacritics, đ as d: what both the index and the query are compared in."""
    plain = unicodedata.normalize("NFD", unicodedata.normalize("NFC", text).casefold().replace("đ", "d"))
    return "".join(c for c in plain if not unicodedata.combining(c))


@dataclass(frozen=True, slots=True)
class Query:
    text: str = ""  # what the visitor typed; "" with filters: browsing
    filters: Mapping[str, str] = field(default_factory=dict)  # record field (FACET_FIELDS) -> exact value
    page: int = 1  # 1-based
    page_size: int = 24


@dataclass(frozen=True, slots=True)
class FacetValue:
    value: str  # the export's (Vietnamese) term, NFC
    label: Text  # the term with its English from the vocabulary
    count: int  # records among the results having it


@dataclass(frozen=True, slots=True)
class Hit:
    record: Record
    snippet: str = ""  # plain text around the match (the template escapes it); "" when browsing


@dataclass(frozen=True, slots=True)
class Results:
    query: Query
    total: int  # records matching, over all pages
    hits: tuple[Hit, ...]  # this page's, best first (browsing: by inventory number)
    facets: Mapping[str, tuple[FacetValue, ...]]  # field -> values among all matching records, most first


class SearchIndex:
    """The published records, searchable; rebuilt when the catalogue's snapshot changes."""

    def __init__(self) -> None:
        self._records: tuple[Record, ...] = ()
        self._vocabulary = Vocabulary()

    def update(self, records: Sequence[Record], vocabulary: Vocabulary) -> None:
        """Index these records (the catalogue's published ones), replacing what was indexed."""
        self._records = tuple(records)
        self._vocabulary = vocabulary

    def get(self, inventory_number: str) -> Record | None:
        return next((r for r in self._records if r.inventory_number == inventory_number), None)

    def values(self, name: str) -> tuple[FacetValue, ...]:
        """Every value of a facet field with its count over all records (the browse pages)."""
        return self._facet(name, self._records)

    def search(self, query: Query) -> Results:
        wanted = fold(query.text).split()
        found = [
            r
            for r in self._records
            if all(r.field(k) == v for k, v in query.filters.items())
            and all(w in fold(" ".join((r.inventory_number, r.title.vi, r.title.en, r.description.vi))) for w in wanted)
        ]
        start = (query.page - 1) * query.page_size
        hits = tuple(Hit(r) for r in found[start : start + query.page_size])
        return Results(query, len(found), hits, {name: self._facet(name, found) for name in FACET_FIELDS})

    def _facet(self, name: str, records: Sequence[Record]) -> tuple[FacetValue, ...]:
        counts = Counter(r.field(name) for r in records if r.field(name))
        return tuple(
            FacetValue(value, self._vocabulary.text(name, value), n)
            for value, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        )


class CatalogueSearch:
    """The search index of the catalogue's current snapshot, re-indexed when the snapshot changes."""

    def __init__(self, current: Callable[[], Snapshot]) -> None:
        self._current = current
        self._lock = threading.Lock()
        self._indexed: Snapshot | None = None
        self._index = SearchIndex()

    def index(self) -> SearchIndex:
        snapshot = self._current()
        if snapshot is not self._indexed:
            with self._lock:
                if snapshot is not self._indexed:
                    index = SearchIndex()
                    index.update(snapshot.published, snapshot.vocabulary)
                    self._index, self._indexed = index, snapshot
        return self._index
