"""The published catalogue: export + images -> every Manifest and Collection, kept current.

The I/O side of the presentation layer. A ``Snapshot`` holds every document as
bytes, built with a placeholder base URL that is swapped for the request's base
when served, so one build serves every host name and proxy prefix and its
hashes (ETags, Change Discovery) do not depend on who asked.

Freshness: at most every ``check_interval`` seconds a request re-stats the
export and every image it names (no pixels are read); anything different
triggers a rebuild in place, without a restart. A rebuild is incremental:
a manifest's bytes are cached under a hash of everything it depends on (the
record, its images' fingerprints, its collections, the publisher settings), so
unchanged records cost one cache lookup, in this worker or any other.
Dimensions come from the image server's own layout cache, never over HTTP.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from iiif_prezi3 import Collection

from ..cache import Cache, NullCache, cache_key
from ..config import ManifestsSettings
from ..errors import ConfigError, IIIFError
from ..image.render import Renderer
from ..image.sources import FileSource, Located, fingerprint
from . import build
from .build import ImageRef, Publisher, Ref
from .changes import ChangeLog
from .exports import read_export
from .records import Problem, Record, Text, missing_columns, parse_records

log = logging.getLogger(__name__)

#: Stands for the public base URL inside built documents; replaced when served or written.
BASE = "http://iiif-server-base.invalid"
BUILD_VERSION = "1"  # bump when building changes output: every cached manifest is rebuilt
_CACHE_GROUP = "presentation"
CHANGES_FILE = "changes.sqlite"  # in [manifests] state_dir
Progress = Callable[[int, int], None]  # (records done, records to build)


@dataclass(frozen=True, slots=True)
class Document:
    path: str  # "iiif/manifests/KH-DT-0001", "iiif/collections/top"
    type: str  # "Manifest" | "Collection"
    body: bytes  # JSON with BASE for the base URL
    etag: str

    def render(self, base: str) -> bytes:
        return self.body.replace(BASE.encode(), base.encode())


@dataclass(frozen=True, slots=True)
class Inputs:
    """What a snapshot was built from, to tell cheaply whether it is still current."""

    export: tuple[int, int, int] | None  # (size, mtime_ns, inode) of the export; None: no export
    images: dict[str, Located | None]  # identifier -> the file it resolved to (None: it did not)


@dataclass(slots=True)
class Snapshot:
    documents: dict[str, Document] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    withheld: list[tuple[Record, str]] = field(default_factory=list)
    published: list[Record] = field(default_factory=list)
    inputs: Inputs = field(default_factory=lambda: Inputs(None, {}))
    checked: float = 0.0  # monotonic time of the last freshness check

    @property
    def manifests(self) -> int:
        return sum(1 for d in self.documents.values() if d.type == "Manifest")

    @property
    def collections(self) -> int:
        return sum(1 for d in self.documents.values() if d.type == "Collection")


def publisher_of(settings: ManifestsSettings) -> Publisher:
    return Publisher(
        provider_id=settings.provider_id,
        provider_label=Text(settings.provider_label_vi, settings.provider_label_en),
        provider_homepage=settings.provider_homepage,
        collection_label=Text(settings.collection_label_vi, settings.collection_label_en),
        item_homepage=settings.item_homepage,
        thumbnail_size=settings.thumbnail_size,
        paged_types=settings.paged_types,
    )


class Catalogue:
    def __init__(
        self,
        settings: ManifestsSettings,
        source: FileSource,
        renderer: Renderer,
        cache: Cache | None = None,
        changes: ChangeLog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.source = source
        self.renderer = renderer
        self.cache: Cache = cache or NullCache()
        self.changes = changes
        self.publisher = publisher_of(settings)
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._tag = hashlib.sha1(f"{BUILD_VERSION}|{self.publisher!r}|{settings.collections}".encode()).hexdigest()

    def current(self) -> Snapshot:
        """The snapshot, rebuilt first if the export or an image changed since it was built."""
        snapshot = self._snapshot
        now = self._clock()
        if snapshot is not None and now - snapshot.checked < self.settings.check_interval:
            return snapshot
        with self._lock:
            snapshot = self._snapshot
            if snapshot is not None and self._clock() - snapshot.checked < self.settings.check_interval:
                return snapshot
            if snapshot is None or self._changed(snapshot.inputs):
                try:
                    snapshot = self.build()
                except ConfigError as error:  # keep serving what was built; retried at the next check
                    log.error("manifests not rebuilt: %s", error)
                    snapshot = snapshot or Snapshot(inputs=Inputs(_stat(self.settings.source), {}))
            snapshot.checked = self._clock()
            self._snapshot = snapshot
            return snapshot

    def build(self, progress: Progress | None = None) -> Snapshot:
        """Build everything from the export now; records what changed in the change log."""
        snapshot = Snapshot()
        path = self.settings.source
        export_id = _stat(path)
        images: dict[str, Located | None] = {}
        if export_id is None:
            # An error, not an empty catalogue: a missing file (mid-copy, unmounted) must not withdraw
            # everything. An export with no rows does.
            raise ConfigError(f"no collection export at {path}")
        self._build_records(path, snapshot, images, progress)
        if _stat(path) != export_id:
            raise ConfigError(f"collection export {path} changed while it was read; it is read again shortly")
        snapshot.inputs = Inputs(export_id, images)
        self._build_collections(snapshot)
        if self.changes is not None:
            self.changes.record({d.path: (d.type, d.etag) for d in snapshot.documents.values()})
        return snapshot

    # -- building ----------------------------------------------------------------

    def _build_records(
        self, path: Path, snapshot: Snapshot, images: dict[str, Located | None], progress: Progress | None
    ) -> None:
        export = read_export(path)
        missing = missing_columns(export.header, self.settings.columns)
        if missing:
            raise ConfigError(f"collection export {path} has no column(s) {missing} (see [manifests.columns])")
        parsed = parse_records(export.rows, self.settings.columns, self.settings.extra_rights)
        snapshot.problems.extend(parsed.problems)
        located: dict[str, list[Located]] = {}
        for record in parsed.records:
            found = self._locate_all(record, images, snapshot.problems)
            if found is None:
                continue
            if not record.access or record.access not in self.settings.publish:
                reason = f"access {record.access!r} is not published" if record.access else "no access level"
                snapshot.withheld.append((record, reason))
                continue
            snapshot.published.append(record)
            located[record.inventory_number] = found
        groups = self._groups(snapshot.published)

        for done, record in enumerate(snapshot.published, start=1):
            refs = [Ref(build.collection_path(*g), Text(v)) for g, v in groups.memberships(record)]
            try:
                body = self._manifest_bytes(record, located[record.inventory_number], refs)
            except IIIFError as error:  # unreadable image: this record only
                snapshot.problems.append(Problem(record.row, record.inventory_number, str(error)))
            else:
                document = _document(build.manifest_path(record.inventory_number), "Manifest", body)
                snapshot.documents[document.path] = document
            if progress is not None:
                progress(done, len(snapshot.published))
        snapshot.published = [
            r for r in snapshot.published if build.manifest_path(r.inventory_number) in snapshot.documents
        ]
        snapshot.problems.sort(key=lambda p: p.row)

    def _locate_all(
        self, record: Record, images: dict[str, Located | None], problems: list[Problem]
    ) -> list[Located] | None:
        found = []
        for identifier in record.images:
            try:
                where = self.source.locate(identifier)
            except IIIFError:
                images[identifier] = None
                problems.append(Problem(record.row, record.inventory_number, f"image file not found: {identifier}"))
                return None
            images[identifier] = where
            found.append(where)
        return found

    def _manifest_bytes(self, record: Record, located: list[Located], refs: list[Ref]) -> bytes:
        inputs = f"{self._tag}|{_without_row(record)!r}|{[s.fingerprint for s in located]}|{refs!r}"
        key = cache_key(_CACHE_GROUP, "p:" + hashlib.sha1(inputs.encode()).hexdigest())
        body = self.cache.get(key)
        if body is None:
            images = [self._image(s) for s in located]
            manifest = build.build_manifest(record, images, BASE, self.publisher, refs)
            body = build.to_bytes(manifest)
            self.cache.put(key, body)
        return body

    def _image(self, located: Located) -> ImageRef:
        return ImageRef(located.identifier, *self.renderer.dimensions(located))

    def _groups(self, records: list[Record]) -> Groups:
        return Groups(self.settings.collections, records)

    def _build_collections(self, snapshot: Snapshot) -> None:
        records = snapshot.published
        groups = self._groups(records)
        first_image = {r.inventory_number: r.images[0] for r in records}
        thumbs: dict[str, ImageRef] = {}

        def thumb(record: Record) -> ImageRef | None:
            identifier = first_image[record.inventory_number]
            if identifier not in thumbs:
                try:
                    thumbs[identifier] = self._image(self.source.locate(identifier))
                except IIIFError:
                    return None
            return thumbs[identifier]

        def manifest_refs(members: list[Record]) -> list:
            refs = []
            for record in members:
                image = thumb(record)
                if image is not None:
                    refs.append(build.manifest_ref(BASE, record, image, self.publisher))
            return refs

        top_path = build.collection_path(build.TOP)
        top_label = self.publisher.collection_label
        top_items: list = []
        for name, values in groups.by_field.items():
            group_path = build.collection_path(f"by-{build.slug(name)}")
            group_label = build.GROUP_LABELS.get(name, Text(name, name))
            value_refs = []
            for value, (value_slug, members) in values.items():
                value_path = build.collection_path(build.slug(name), value_slug)
                collection = build.build_collection(
                    value_path,
                    Text(value),
                    manifest_refs(members),
                    BASE,
                    self.publisher,
                    thumb(members[0]),
                    [Ref(group_path, group_label)],
                )
                self._add(snapshot, value_path, collection)
                value_refs.append(build.collection_ref(collection))
            group = build.build_collection(
                group_path,
                group_label,
                value_refs,
                BASE,
                self.publisher,
                thumb(next(iter(values.values()))[1][0]) if values else None,
                [Ref(top_path, top_label)],
            )
            self._add(snapshot, group_path, group)
            top_items.append(build.collection_ref(group))
        if not groups.by_field:
            top_items = manifest_refs(records)
        top = build.build_collection(
            top_path, top_label, top_items, BASE, self.publisher, thumb(records[0]) if records else None
        )
        self._add(snapshot, top_path, top)

    @staticmethod
    def _add(snapshot: Snapshot, path: str, collection: Collection) -> None:
        snapshot.documents[path] = _document(path, "Collection", build.to_bytes(collection))

    # -- freshness ---------------------------------------------------------------

    def _changed(self, inputs: Inputs) -> bool:
        if _stat(self.settings.source) != inputs.export:
            return True
        for identifier, located in inputs.images.items():
            if located is None:  # named but missing: has it arrived?
                try:
                    self.source.locate(identifier)
                except IIIFError:
                    continue
                return True
            try:
                if fingerprint(os.stat(located.path)) != located.fingerprint:
                    return True
            except OSError:
                return True
        return False


class Groups:
    """Records grouped by each configured field: field -> value -> (slug, records), values sorted."""

    def __init__(self, fields: tuple[str, ...], records: list[Record]) -> None:
        self.by_field: dict[str, dict[str, tuple[str, list[Record]]]] = {}
        self._slug: dict[tuple[str, str], str] = {}
        for name in fields:
            values: dict[str, list[Record]] = {}
            for record in records:
                value = record.field(name)
                if value:
                    values.setdefault(value, []).append(record)
            slugs: dict[str, str] = {}
            taken: set[str] = set()
            for value in sorted(values, key=lambda v: (build.slug(v), v)):
                candidate, n = build.slug(value), 2
                while candidate in taken:
                    candidate, n = f"{build.slug(value)}-{n}", n + 1
                taken.add(candidate)
                slugs[value] = candidate
                self._slug[(name, value)] = candidate
            if values:
                self.by_field[name] = {value: (slugs[value], values[value]) for value in slugs}

    def memberships(self, record: Record) -> list[tuple[tuple[str, str], str]]:
        """((field slug, value slug), value) of every collection the record is in."""
        found = []
        for name in self.by_field:
            value = record.field(name)
            if value:
                found.append(((build.slug(name), self._slug[(name, value)]), value))
        return found


def _document(path: str, kind: str, body: bytes) -> Document:
    return Document(path, kind, body, hashlib.sha1(body).hexdigest()[:32])


def _without_row(record: Record) -> tuple[object, ...]:
    """A record's content: moving a row in the export must not change its manifest's hash."""
    return tuple(getattr(record, name) for name in record.__slots__ if name != "row")  # type: ignore[attr-defined]


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns, info.st_ino)
