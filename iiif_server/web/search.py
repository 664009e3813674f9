"""Search and facets over the published records: SQLite FTS5 in memory, one index per worker process.

FTS5 is a real search engine (inverted index, bm25, phrase and prefix queries) that ships inside the
sqlite3 module of the standard library: no service to run, nothing to install, and an index of
10 000 records builds in under two seconds (bench/search.py), so each worker keeps its own and
rebuilds it when the catalogue's snapshot changes.

The unaccent step: the index and the query hold ``fold``ed text (NFC, case folded, đ as d, no
combining marks), so "trong dong", "Trống Đồng", "TRONG DONG" and an NFD-typed "trống đồng" are
one query. The visitor's words are only ever passed to FTS5 as quoted strings (``match_expression``):
its syntax (``"``, ``*``, ``:``, ``(``, ``NEAR``, ``-``) is text to search for, never an error.

Snippets come from the record's own text, not from FTS5's ``snippet()`` (which would cut the
folded copy): the original is folded character by character with each folded character's origin
kept (``_folded_with_origins``), the query's words are found there, and the window is cut from the
original at the same place.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import sqlite3
import threading
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..presentation.catalogue import Snapshot
from ..presentation.records import GROUPABLE, Record, Text
from ..presentation.vocabulary import Vocabulary
from .urls import FACETS

#: Record fields with facets, in display order.
FACET_FIELDS = tuple(FACETS.values())
#: Record fields a query may filter on: the facets and the materials (controlled terms all).
FILTER_FIELDS = tuple(dict.fromkeys((*FACET_FIELDS, *GROUPABLE)))
#: The indexed columns and their bm25 weights: an inventory number or title match ranks above a
#: match in the terms (materials, sites, periods, type, rank and their English), above descriptions.
COLUMNS = {"inventory": 10.0, "title": 5.0, "terms": 2.0, "description": 1.0}
MAX_WORDS = 16  # words of a query used; the rest are dropped (no query is unboundedly slow)
SNIPPET_CHARS = 160
_WORD = re.compile(r"[^\W_]+")  # letters and digits: what unicode61 keeps as tokens
_MAX_OFFSET = 1 << 62  # SQLite integers are 64-bit


def fold(text: str) -> str:
    """Lower case without diacritics, đ as d: what both the index and the query are compared in."""
    plain = unicodedata.normalize("NFD", unicodedata.normalize("NFC", text).casefold().replace("đ", "d"))
    return "".join(c for c in plain if not unicodedata.combining(c))


@functools.lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    return fold(char)


def _folded_with_origins(text: str) -> tuple[str, list[int]]:
    """``fold`` of NFC text one character at a time, with the index in ``text`` of each folded character.

    For NFC text this is ``fold(text)`` (tested): casefolding and stripping marks are per character.
    A character may fold to several (ß → ss) or to none (a lone mark), hence the map, not offsets.
    """
    parts: list[str] = []
    origins: list[int] = []
    for index, char in enumerate(text):
        folded = _fold_char(char)
        parts.append(folded)
        origins.extend([index] * len(folded))
    return "".join(parts), origins


def query_words(text: str) -> list[list[str]]:
    """The visitor's text as words (split at spaces), each the folded tokens it holds (``KH-HV-0001``
    is one word of three tokens: a phrase). Words without a letter or digit are dropped."""
    words = (_WORD.findall(word) for word in fold(text).split())
    return [tokens for tokens in words if tokens][:MAX_WORDS]


def match_expression(text: str) -> str:
    """The FTS5 query for a visitor's text: every word required, each a quoted string (so FTS5's
    syntax in it is plain text), the last one a prefix while the visitor is still typing it."""
    words = query_words(text)
    phrases = [f'"{" ".join(tokens)}"' for tokens in words]  # tokens are letters and digits: no quote inside
    if phrases and not text[-1:].isspace():
        phrases[-1] = f"({phrases[-1]} OR {phrases[-1]}*)"  # the word itself scores too: it ranks first
    return " AND ".join(phrases)


def inventory_key(text: str) -> str:
    """An inventory number reduced to its letters and digits: "KH-HV-0001", "kh hv 0001" → "khhv0001"."""
    return "".join(_WORD.findall(fold(text)))


@functools.cache
def require_fts5() -> None:
    """Raise ConfigError unless this Python's SQLite has FTS5 and the in-memory ``memdb`` VFS (3.36+)."""
    try:
        probe = sqlite3.connect(f"file:/iiif-search-probe-{uuid.uuid4().hex}?vfs=memdb", uri=True)
        try:
            probe.execute("CREATE VIRTUAL TABLE probe USING fts5(text, tokenize='unicode61')")
        finally:
            probe.close()
    except sqlite3.Error as error:
        raise ConfigError(
            f"the site's search needs SQLite ≥ 3.36 with FTS5; this Python's sqlite3 is {sqlite3.sqlite_version} "
            f"({error}): use a Python built against a full SQLite (python.org, Debian and Ubuntu builds have it)"
        ) from None


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


_SCHEMA = f"""
CREATE TABLE records (id INTEGER PRIMARY KEY, {", ".join(f"{n} TEXT NOT NULL" for n in FILTER_FIELDS)});
{"".join(f"CREATE INDEX records_{n} ON records ({n});" for n in FILTER_FIELDS)}
CREATE VIRTUAL TABLE fts USING fts5({", ".join(COLUMNS)}, content='', prefix='1 2 3',
    tokenize='unicode61 remove_diacritics 2');
"""  # contentless: the records are Python objects; prefix indexes: "khao s" 35 -> 24 ms for +0.5 MB (10 000 records)
_BM25 = f"bm25(fts, {', '.join(str(w) for w in COLUMNS.values())})"
_names = itertools.count()


def _facet_order(pair: tuple[str, int]) -> tuple[int, str]:
    """Facet values: most records first, then by value."""
    return (-pair[1], pair[0])


@dataclass(frozen=True, slots=True)
class _Built:
    """One built database and what answers are made of; replaced whole, never changed."""

    uri: str
    owner: sqlite3.Connection  # keeps the in-memory database alive (it goes with its last connection)
    records: tuple[Record, ...]  # by row id: sorted by inventory number
    by_inventory: Mapping[str, Record]
    by_image: Mapping[str, Record]  # image identifier -> the first record showing it
    labels: Mapping[tuple[str, str], Text]  # (field, value) -> label with the vocabulary's English
    values: Mapping[str, tuple[FacetValue, ...]]  # FILTER_FIELDS over every record
    columns: Mapping[str, tuple[str, ...]]  # FACET_FIELDS: each record's value, by row id
    by_key: Mapping[str, frozenset[int]]  # inventory_key -> row ids
    local: threading.local = field(default_factory=threading.local)  # each thread's reading connection


class SearchIndex:
    """The published records, searchable; rebuilt when the catalogue's snapshot changes.

    Built once into an in-memory SQLite database (``memdb``: shareable between connections, unlike
    ``:memory:``); each thread searches on its own read-only connection, so threads search at the
    same time (sqlite3 lets go of the GIL while SQLite works). ``update`` builds a new database
    aside and swaps it in: searches under way finish on the old one.
    """

    def __init__(self) -> None:
        require_fts5()
        self._built = self._build((), Vocabulary())

    def update(self, records: Sequence[Record], vocabulary: Vocabulary) -> None:
        """Index these records (the catalogue's published ones), replacing what was indexed."""
        self._built = self._build(records, vocabulary)

    def get(self, inventory_number: str) -> Record | None:
        return self._built.by_inventory.get(unicodedata.normalize("NFC", inventory_number))

    def showing(self, identifier: str) -> Record | None:
        """The published record an image belongs to (its label, rights, attribution), if any."""
        return self._built.by_image.get(unicodedata.normalize("NFC", identifier))

    def values(self, name: str) -> tuple[FacetValue, ...]:
        """Every value of a facet field with its count over all records (the browse pages)."""
        return self._built.values.get(name, ())

    def search(self, query: Query) -> Results:
        built = self._built
        expression = match_expression(query.text)
        where, parameters = [], list[object]()
        for name, value in query.filters.items():
            if name not in FILTER_FIELDS or not _encodable(value):
                return Results(query, 0, (), {name: () for name in FACET_FIELDS})
            where.append(f"r.{name} = ?")
            parameters.append(unicodedata.normalize("NFC", value))
        size = max(1, query.page_size)
        offset = min(max(0, query.page - 1) * size, _MAX_OFFSET)
        with self._connection(built) as connection:
            if expression:  # FTS5 first (CROSS JOIN: never the MATCH once per row a filter's index gives)
                source = "fts CROSS JOIN records r ON r.id = fts.rowid" if where else "fts"
                matching = f"FROM {source} WHERE fts MATCH ?{''.join(f' AND {w}' for w in where)}"
                parameters.insert(0, expression)
                ids = [row[0] for row in connection.execute(f"SELECT fts.rowid {matching}", parameters)]
                # the inventory number typed, if it is one, first; then by bm25 (only as many as the page needs)
                typed = built.by_key.get(inventory_key(query.text), frozenset())
                exact = sorted(typed.intersection(ids)) if typed else []
                wanted = min(offset + size, len(ids))
                ranked = f"SELECT fts.rowid {matching} ORDER BY {_BM25}, fts.rowid LIMIT ?"
                best = [row[0] for row in connection.execute(ranked, [*parameters, wanted])] if wanted else []
                page = (exact + [i for i in best if i not in typed])[offset:wanted]
            else:
                if where:
                    sql = f"SELECT r.id FROM records r WHERE {' AND '.join(where)} ORDER BY r.id"
                    ids = [row[0] for row in connection.execute(sql, parameters)]
                else:
                    ids = list(range(len(built.records)))
                page = ids[offset : offset + size]
        facets = {  # counted by C loops (Counter over map) over the matching ids: see docs/website.md#search
            name: tuple(
                FacetValue(value, built.labels[name, value], count)
                for value, count in sorted(Counter(map(column.__getitem__, ids)).items(), key=_facet_order)
                if value
            )
            for name, column in built.columns.items()
        }
        words = query_words(query.text)
        typing = not query.text[-1:].isspace()
        hits = tuple(Hit(built.records[i], snippet(built.records[i], words, typing) if words else "") for i in page)
        return Results(query, len(ids), hits, facets)

    @contextmanager
    def _connection(self, built: _Built) -> Iterator[sqlite3.Connection]:
        """This thread's read-only connection to ``built`` (opened on its first search)."""
        connection: sqlite3.Connection | None = getattr(built.local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(built.uri, uri=True, isolation_level=None)
            connection.execute("PRAGMA query_only = 1")
            built.local.connection = connection
        yield connection

    @staticmethod
    def _build(records: Sequence[Record], vocabulary: Vocabulary) -> _Built:
        ordered = tuple(sorted(records, key=lambda r: (r.inventory_number, r.row)))
        uri = f"file:/iiif-search-{next(_names)}-{uuid.uuid4().hex}?vfs=memdb"
        owner = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        owner.executescript(_SCHEMA)
        labels: dict[tuple[str, str], Text] = {}
        for record in ordered:
            for name in FILTER_FIELDS:
                value = record.field(name)
                if value and (name, value) not in labels:
                    labels[name, value] = vocabulary.text(name, value)
        with owner:  # one transaction
            owner.execute("BEGIN")
            owner.executemany(
                f"INSERT INTO records VALUES (?, {', '.join('?' for _ in FILTER_FIELDS)})",
                ((i, *(r.field(n) for n in FILTER_FIELDS)) for i, r in enumerate(ordered)),
            )
            owner.executemany(
                f"INSERT INTO fts (rowid, {', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?)",
                ((i, *_indexed(r, labels)) for i, r in enumerate(ordered)),
            )
        owner.execute("INSERT INTO fts (fts) VALUES ('optimize')")  # one b-tree per term: faster queries
        values = {
            name: tuple(
                FacetValue(value, labels[name, value], count)
                for value, count in sorted(Counter(r.field(name) for r in ordered).items(), key=_facet_order)
                if value
            )
            for name in FILTER_FIELDS
        }
        by_inventory = {r.inventory_number: r for r in reversed(ordered)}  # a duplicate: its first row
        by_image = {image: r for r in reversed(ordered) for image in r.images}
        columns = {name: tuple(r.field(name) for r in ordered) for name in FACET_FIELDS}
        keys: dict[str, set[int]] = {}
        for i, record in enumerate(ordered):
            keys.setdefault(inventory_key(record.inventory_number), set()).add(i)
        by_key = {key: frozenset(ids) for key, ids in keys.items()}
        return _Built(uri, owner, ordered, by_inventory, by_image, labels, values, columns, by_key)


def _indexed(record: Record, labels: Mapping[tuple[str, str], Text]) -> tuple[str, str, str, str]:
    """A record's indexed columns (``COLUMNS``), folded."""
    inventory = f"{record.inventory_number} {inventory_key(record.inventory_number)}"
    terms = [text for name in GROUPABLE if record.field(name) for text in _both(labels[name, record.field(name)])]
    return (
        fold(inventory),
        fold(" \n ".join(_both(record.title))),
        fold(" \n ".join(terms)),
        fold(" \n ".join(_both(record.description))),
    )


def _both(text: Text) -> tuple[str, ...]:
    return tuple(t for t in (text.vi, text.en) if t)


def _encodable(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate: SQLite could not take it, and no record holds it
        return False
    return True


def snippet(record: Record, words: Sequence[Sequence[str]], typing: bool = True, width: int = SNIPPET_CHARS) -> str:
    """Plain text of the record around the first place it holds one of the query's ``words``.

    ``words`` are ``query_words``: tokens that must follow each other; whole words, except the last
    while the visitor is still ``typing`` it (a prefix, as in the search). All the words side by side
    first, else any one of them; in the descriptions, then the controlled terms. A match elsewhere
    (title, inventory number, a term's English) gives the description's beginning. The text is the
    record's own (NFC): only finding the place is done in folded text.
    """
    if not words:
        return ""
    between = r"[\W_]+"
    end = "" if typing else r"(?![^\W_])"  # the last word: a prefix while it is being typed
    phrases = [between.join(re.escape(token) for token in tokens) for tokens in words]
    together = rf"(?<![^\W_]){between.join(phrases)}{end}"  # the words side by side: the best place
    anyone = [rf"(?:{p})(?![^\W_])" for p in phrases[:-1]] + [phrases[-1] + end]
    patterns = [together] + ([rf"(?<![^\W_])(?:{'|'.join(anyone)})"] if len(words) > 1 else [])
    texts = [*_both(record.description), *(record.field(name) for name in GROUPABLE)]
    folded = [fold(text) for text in texts]  # as _folded_with_origins, faster: the origins only where found
    for pattern in map(re.compile, patterns):
        for text, plain in zip(texts, folded, strict=True):
            found = pattern.search(plain)
            if found:
                return _window(text, _folded_with_origins(text)[1][found.start()], width)
    return _window(next((t for t in texts if t), ""), 0, width)


def _window(text: str, at: int, width: int) -> str:
    """About ``width`` characters of ``text`` around index ``at``, cut at spaces, "…" where cut."""
    if len(text) <= width:
        return text
    start = max(0, min(at - width // 3, len(text) - width))
    if start > 0:
        space = text.find(" ", start, at)
        start = space + 1 if space >= 0 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", max(at + 1, start + 1), end)
        end = space if space > 0 else end
    return ("…" if start > 0 else "") + text[start:end].strip() + ("…" if end < len(text) else "")


class CatalogueSearch:
    """The search index of the catalogue's current snapshot, re-indexed when the snapshot changes.

    One thread builds the new index while the others keep answering from the old one (only the very
    first build is waited for). Fails at start-up (ConfigError) if SQLite lacks FTS5.
    """

    def __init__(self, current: Callable[[], Snapshot]) -> None:
        require_fts5()
        self._current = current
        self._lock = threading.Lock()
        # (published records, vocabulary, process, their index): compared by identity; replaced in one assignment
        self._indexed: tuple[object, object, int, SearchIndex] | None = None

    def index(self) -> SearchIndex:
        snapshot = self._current()
        indexed = self._indexed
        if indexed is not None and _same(indexed, snapshot):
            return indexed[3]
        if not self._lock.acquire(blocking=indexed is None):
            assert indexed is not None
            return indexed[3]  # another thread is indexing the new snapshot: the old index answers meanwhile
        try:
            indexed = self._indexed
            if indexed is None or not _same(indexed, snapshot):
                index = SearchIndex()
                index.update(snapshot.published, snapshot.vocabulary)
                indexed = self._indexed = (snapshot.published, snapshot.vocabulary, os.getpid(), index)
            return indexed[3]
        finally:
            self._lock.release()


def _same(indexed: tuple[object, object, int, SearchIndex], snapshot: Snapshot) -> bool:
    """The index is of this snapshot's records (a snapshot kept after a failed rebuild is a copy
    holding the same lists: no re-indexing), built in this process (SQLite connections must not
    cross a fork: a worker forked from a process that had indexed builds its own)."""
    return indexed[0] is snapshot.published and indexed[1] is snapshot.vocabulary and indexed[2] == os.getpid()
