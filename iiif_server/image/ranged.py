"""Masters read by ranges from a remote store (S3, a partner's HTTP(S) server): what both share.

A ``Store`` answers ``head(key)`` (size, version tag, time) and ``get(key, tag, start, length)``
(exactly those bytes of that version, else ``ObjectChanged``); ``s3.S3Store`` and
``http_source.HttpStore`` are the two. Over any store:

``RangedObject`` is one version of one object (key + tag): never downloaded whole. libvips reads it
through fixed-size chunks kept in a ``DiskCache`` (shared by a host's workers, LRU, atomic writes),
each missing run of chunks one ranged GET; a pass-through tile is ``read_exact``: its chunks if
cached, else one ranged GET of exactly its bytes. Every GET names the version, so the bytes of two
versions are never mixed.

``StoreSource`` is identifier -> object, like ``FileSource`` for files: key ``prefix + identifier``,
checked like a path (no ``..``, hidden or empty components, backslash, NUL); its HEAD's tag is the
**fingerprint**, so every cache key and ETag downstream changes when the object is replaced. A
located object is trusted ``head_seconds`` per worker, a missing key remembered ``miss_seconds``,
and neither past a purge (``follow_purges``): ``ingest --replace`` and ``cache purge`` show at once,
an object replaced behind the server's back within ``head_seconds``.
No pyvips and no Flask here (``blobs.py`` adapts for libvips).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..cache import cache_key
from ..cache.disk import DiskCache
from ..errors import InvalidRequest, NotFound, StoreUnavailable
from ..lru import LRU
from ..metrics import STORE_BYTES, STORE_REQUESTS
from .sources import Located, _valid


class ObjectChanged(StoreUnavailable):
    """The object was replaced (or deleted) since it was located: its tag no longer matches.
    The request may be tried again (503): the next one locates the new version."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the image changed while it was read ({key}); try again", 1)


class Store(Protocol):
    """Where ``RangedObject`` reads from: ranged reads of one version of a key, a chunk cache."""

    scheme: str  # the fingerprint's prefix: "s3", "http"
    chunks: DiskCache | None
    chunk_bytes: int

    def name(self, key: str) -> str:
        """The object's name in caches and logs (``s3://bucket/key``, its URL)."""
        ...

    def head(self, key: str) -> tuple[int, str, float] | None:
        """Size, version tag and modification time of ``key``; None if it does not exist."""
        ...

    def get(self, key: str, etag: str, start: int, length: int) -> bytes:
        """Exactly bytes ``start`` .. ``start + length`` of the version ``etag`` of ``key``."""
        ...

    def keys(self, prefix: str, limit: int) -> Iterator[tuple[str, int, str, float]]:
        """Keys under ``prefix`` with sizes, tags and times (none where the store cannot list)."""
        ...


def count_request(kind: str, received: int) -> None:
    """A store request and the body bytes it brought, in the server's metrics."""
    STORE_REQUESTS.labels(kind).inc()
    if received:
        STORE_BYTES.inc(received)


class ChunkedStore:
    """What the stores share: their config, the host's chunk cache and chunk size, the requests and
    bytes this process sent and received, and a client made on first use, per process (clients are
    not to be shared across ``fork``); pickling (for a spawned render child) drops client and counters."""

    scheme = ""

    def __init__(self, config: Any, chunks: DiskCache | None = None, chunk_bytes: int = 1 << 20) -> None:
        self.config = config
        self.chunks = chunks
        self.chunk_bytes = chunk_bytes
        self._lock = threading.Lock()
        self._client: Any = None
        self.requests = 0  # GETs and HEADs sent by this process
        self.fetched_bytes = 0  # body bytes received by this process

    def __getstate__(self) -> dict[str, Any]:
        chunks = (self.chunks.root, self.chunks.max_bytes) if self.chunks is not None else None
        return {"config": self.config, "chunks": chunks, "chunk_bytes": self.chunk_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        chunks = DiskCache(*state["chunks"]) if state["chunks"] is not None else None
        ChunkedStore.__init__(self, state["config"], chunks, state["chunk_bytes"])

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._connect()
        return self._client

    def _connect(self) -> Any:
        raise NotImplementedError

    def _count(self, kind: str, received: int) -> None:
        with self._lock:
            self.requests += 1
            self.fetched_bytes += received
        count_request(kind, received)


@dataclass(frozen=True)
class RangedObject:
    """One version of one object, read by ranges: ``read`` through the chunk cache (libvips, TIFF
    structure), ``read_exact`` as one ranged GET unless cached (a pass-through tile). Equal when
    key and tag are, so a ``Located`` carrying it keys caches as a file's would."""

    store: Store = field(compare=False, repr=False)
    key: str
    etag: str
    size: int

    @property
    def chunk_size(self) -> int:
        return self.store.chunk_bytes

    @property
    def name(self) -> str:
        return self.store.name(self.key)

    def _chunk_key(self, index: int) -> str:
        return cache_key(self.name, f"c{self.store.chunk_bytes}:{self.etag}:{index}")

    def _chunk_span(self, index: int) -> tuple[int, int]:
        start = index * self.store.chunk_bytes
        return start, min(self.store.chunk_bytes, self.size - start)

    def chunk(self, index: int) -> bytes:
        """Chunk ``index``: from the chunk cache, else fetched with any missing chunks after it that
        are needed too (see ``read``)."""
        return self._chunks(index, index)[0]

    def _chunks(self, first: int, last: int) -> list[bytes]:
        """Chunks ``first`` .. ``last``; each run of missing ones is one ranged GET, then kept."""
        cache = self.store.chunks
        found: list[bytes | None] = [cache.get(self._chunk_key(i)) if cache else None for i in range(first, last + 1)]
        i = 0
        while i < len(found):
            if found[i] is not None:
                i += 1
                continue
            j = i
            while j + 1 < len(found) and found[j + 1] is None:
                j += 1
            start, _ = self._chunk_span(first + i)
            end_start, end_length = self._chunk_span(first + j)
            data = self.store.get(self.key, self.etag, start, end_start + end_length - start)
            for k in range(i, j + 1):
                offset = (first + k) * self.store.chunk_bytes - start
                piece = data[offset : offset + self.store.chunk_bytes]
                found[k] = piece
                if cache is not None:
                    cache.put(self._chunk_key(first + k), piece)
            i = j + 1
        return [piece for piece in found if piece is not None]

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` (fewer at the end), through whole chunks."""
        length = min(length, self.size - offset)
        if length <= 0 or offset < 0:
            return b""
        size = self.store.chunk_bytes
        first, last = offset // size, (offset + length - 1) // size
        data = b"".join(self._chunks(first, last))
        skip = offset - first * size
        return data[skip : skip + length]

    def read_exact(self, offset: int, length: int) -> bytes:
        """Bytes ``offset`` .. ``offset + length``: from cached chunks if all are, else one ranged GET
        of exactly those bytes (a pass-through tile never costs a chunk)."""
        cache = self.store.chunks
        size = self.store.chunk_bytes
        if cache is not None and length > 0:
            first, last = offset // size, (offset + length - 1) // size
            pieces = [cache.get(self._chunk_key(i)) for i in range(first, last + 1)]
            if all(piece is not None for piece in pieces):
                data = b"".join(p for p in pieces if p is not None)
                skip = offset - first * size
                return data[skip : skip + length]
        return self.store.get(self.key, self.etag, offset, length)


class StoreSource:
    """Identifier -> object in a store, like ``FileSource`` for files (``locate``, ``known``,
    ``list_identifiers``); its ``Located`` carries the ``RangedObject`` to read it by."""

    def __init__(
        self,
        store: Store,
        prefix: str,
        extensions: tuple[str, ...],
        head_seconds: float = 1.0,
        miss_seconds: float = 5.0,
        cache_size: int = 32768,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.extensions = tuple(e.lower() for e in extensions)
        self.head_seconds = head_seconds
        self.miss_seconds = miss_seconds
        self._found: LRU[str, tuple[float, int, Located]] = LRU(cache_size)
        self._misses: LRU[str, tuple[float, int]] = LRU(cache_size)
        self._generation: Callable[[], int | None] = _unchanging

    def follow_purges(self, generation: Callable[[], int | None]) -> None:
        """Trust what was located only while ``generation()`` (the caches' purge generation,
        ``TieredCache.memory_generation``; None while a purge check is due) stays as it was then."""
        self._generation = generation

    def locate(self, identifier: str) -> Located:
        known = self.known(identifier)
        if known is not None:
            return known
        if not _valid(identifier.split("/")):
            raise InvalidRequest(f"identifier {identifier!r} is not a valid image path", "identifier")
        now = self._generation()  # before asking: a purge noticed meanwhile must not be covered
        generation = -1 if now is None else now  # a purge check is due: asked again after it
        found = self._find(self.prefix + identifier)
        if found is None:
            self._misses.put(identifier, (time.monotonic(), generation))
            raise NotFound(f"no image {identifier!r}", "identifier")
        key, size, etag, mtime = found
        blob = RangedObject(self.store, key, etag, size)
        located = Located(identifier, blob.name, f"{self.store.scheme}-{etag}-{size:x}", mtime, size, blob=blob)
        self._found.put(identifier, (time.monotonic(), generation, located))
        return located

    def _find(self, key: str) -> tuple[str, int, str, float] | None:
        """The object: ``key`` itself (one HEAD) when it has an allowed extension, else ``key`` plus
        one, in either case (one LIST of the keys starting ``key.``), the first allowed extension first."""
        if key.lower().endswith(self.extensions):
            found = self.store.head(key)
            return (key, found[0], found[1], found[2]) if found is not None else None
        candidates = {item[0][len(key) :].lower(): item for item in self.store.keys(key + ".", 16)}
        return next((candidates[e] for e in self.extensions if e in candidates), None)

    def known(self, identifier: str) -> Located | None:
        """The object if located less than ``head_seconds`` ago; ``NotFound`` if missing less than
        ``miss_seconds`` ago; else None (ask the store: never on the event loop)."""
        now, generation = time.monotonic(), self._generation()
        found = self._found.get(identifier)
        if found is not None:
            if now - found[0] < self.head_seconds and found[1] == generation:
                return found[2]
            self._found.pop(identifier)
        missed = self._misses.get(identifier)
        if missed is not None:
            if now - missed[0] < self.miss_seconds and missed[1] == generation:
                raise NotFound(f"no image {identifier!r}", "identifier")
            self._misses.pop(identifier)
        return None

    def current(self, located: Located) -> bool:
        """Is the object still the version ``located`` found? (a HEAD, at most every ``head_seconds``)"""
        try:
            return self.locate(located.identifier).fingerprint == located.fingerprint
        except NotFound:
            return False

    def list_identifiers(self, limit: int = 1000) -> list[str]:
        """Images in the store under the prefix, for the index page; hidden components skipped."""
        found: list[str] = []
        for key, *_ in self.store.keys(self.prefix, limit * 4):
            name = key[len(self.prefix) :]
            if _valid(name.split("/")) and name.lower().endswith(self.extensions):
                found.append(name)
                if len(found) >= limit:
                    break
        return found


__all__ = ["ObjectChanged", "RangedObject", "Store", "StoreSource", "count_request"]


def _unchanging() -> int:
    """The purge generation of a source that follows none."""
    return 0
