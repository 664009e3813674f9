"""The published catalogue: export + images -> every Manifest and Collection, kept current.

The I/O side of the presentation layer. A ``Snapshot`` holds every document as
bytes, built with a placeholder base URL that is swapped for the request's base
when served, so one build serves every host name and proxy prefix and its
hashes (ETags, Change Discovery) do not depend on who asked.

Freshness: at most every ``check_interval`` seconds a request re-stats the
export, the vocabulary and every image the export names (no pixels are read);
anything different triggers a rebuild in place, without a restart. A rebuild is
incremental: a manifest's bytes are cached under a hash of everything it depends
on (the record, the English of its terms, its images' fingerprints, its
collections, the publisher settings), so unchanged records cost one cache
lookup, in this worker or any other.
Dimensions come from the image server's own layout cache, never over HTTP.
Which records are published, and which of their images are restricted, is ``restricted.py``'s to say.

A build that would delete more than ``max_delete_share`` of the published
manifests at once is not published (``DeletionRefused``): the server keeps its
last good build and harvesters see no Delete until an operator confirms with
``iiif-server manifests build --force``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..cache import Cache, NullCache, cache_key
from ..config import ManifestsSettings
from ..errors import ConfigError, IIIFError
from ..image.inspector import Inspector
from ..image.sources import ImageSource, Located
from . import build
from .build import Groups, ImageRef, Publisher, Ref
from .changes import ChangeLog, TooManyDeletes
from .exports import read_export
from .records import Problem, Record, Text, missing_columns, parse_records
from .restricted import ImageAccess, Treatments
from .vocabulary import COLUMNS as VOCABULARY_COLUMNS
from .vocabulary import Vocabulary, parse_vocabulary

log = logging.getLogger(__name__)

#: Stands for the public base URL inside built documents; replaced when served or written.
BASE = "http://iiif-server-base.invalid"
BUILD_VERSION = "4"  # bump when building changes output: every cached manifest is rebuilt
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
    vocabulary: tuple[int, int, int] | None = None  # the same of the vocabulary file; None: none


@dataclass(slots=True)
class Snapshot:
    documents: dict[str, Document] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    withheld: list[tuple[Record, str]] = field(default_factory=list)
    published: list[Record] = field(default_factory=list)
    inputs: Inputs = field(default_factory=lambda: Inputs(None, {}))
    vocabulary: Vocabulary = field(default_factory=Vocabulary)  # the English of the published records' terms
    checked: float = 0.0  # monotonic time of the last freshness check

    @property
    def manifests(self) -> int:
        return sum(1 for d in self.documents.values() if d.type == "Manifest")

    @property
    def collections(self) -> int:
        return sum(1 for d in self.documents.values() if d.type == "Collection")


class DeletionRefused(ConfigError):
    """A build was not published: it would delete too many manifests at once (see ``max_delete_share``)."""

    def __init__(self, message: str, snapshot: Snapshot) -> None:
        super().__init__(message)
        self.snapshot = snapshot  # what was built, for the report and to notice when its inputs change


def change_log(settings: ManifestsSettings) -> ChangeLog | None:
    """The Change Discovery history every server and CLI on these settings shares.

    A reader node (``[manifests] role``) never creates it: it serves the writer's history if it finds
    it in a shared ``state_dir``, else none (an empty history of its own would tell harvesters nothing
    was ever published).
    """
    path = settings.state_dir / CHANGES_FILE
    if settings.role == "reader" and not path.is_file():
        return None
    return ChangeLog(path)


def publisher_of(settings: ManifestsSettings, access_note: Text = build.NO_TEXT) -> Publisher:
    return Publisher(
        provider_id=settings.provider_id,
        provider_label=Text(settings.provider_label_vi, settings.provider_label_en),
        provider_homepage=settings.provider_homepage,
        collection_label=Text(settings.collection_label_vi, settings.collection_label_en),
        item_homepage=settings.item_homepage,
        thumbnail_size=settings.thumbnail_size,
        paged_types=settings.paged_types,
        access_note=access_note,
    )


class Catalogue:
    def __init__(
        self,
        settings: ManifestsSettings,
        source: ImageSource,
        inspector: Inspector,
        access: ImageAccess,
        cache: Cache | None = None,
        changes: ChangeLog | None = None,
        clock: Callable[[], float] = time.monotonic,
        records_changes: bool = True,
    ) -> None:
        self.settings = settings
        self.source = source
        self.inspector = inspector
        self.cache: Cache = cache or NullCache()
        self.changes = changes
        self.records_changes = records_changes  # False on a cluster's reader nodes: only the writer records
        self.access = access
        self.publisher = publisher_of(settings, access.note)
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._tag = hashlib.sha1(
            f"{BUILD_VERSION}|{self.publisher!r}|{settings.collections}|{access.tag}".encode()
        ).hexdigest()

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
                except DeletionRefused as error:  # keep the last good build until the inputs change again
                    log.error("manifests not rebuilt: %s", error)
                    snapshot = replace(snapshot or Snapshot(), inputs=error.snapshot.inputs)
                except ConfigError as error:  # keep serving what was built; retried at the next check
                    log.error("manifests not rebuilt: %s", error)
                    snapshot = snapshot or Snapshot(inputs=self._inputs_now())
            snapshot.checked = self._clock()
            self._snapshot = snapshot
            return snapshot

    def build(self, progress: Progress | None = None, force: bool = False) -> Snapshot:
        """Build everything from the export now; records what changed in the change log.

        Raises DeletionRefused, recording nothing, if the build would delete more than
        ``max_delete_share`` of the published manifests, unless ``force``.
        """
        snapshot = Snapshot()
        path = self.settings.source
        export_id = _stat(path)
        images: dict[str, Located | None] = {}
        if export_id is None:
            # An error, not an empty catalogue: a missing file (mid-copy, unmounted) must not withdraw
            # everything. An export with no rows would, so the deletion guard asks for force.
            raise ConfigError(f"no collection export at {path}")
        vocabulary_id = _stat(self.settings.vocabulary_file)  # before reading: an edit during it is seen next time
        vocabulary = snapshot.vocabulary = self._read_vocabulary(snapshot)
        treatment = self.access.read()  # the same export, checked unchanged below
        self._build_records(path, snapshot, images, vocabulary, treatment, progress)
        if _stat(path) != export_id:
            raise ConfigError(f"collection export {path} changed while it was read; it is read again shortly")
        snapshot.inputs = Inputs(export_id, images, vocabulary_id)
        self._build_collections(snapshot, vocabulary, treatment)
        if self.changes is not None and self.records_changes:
            share = 1.0 if force else self.settings.max_delete_share
            current = {d.path: (d.type, d.etag) for d in snapshot.documents.values()}
            try:
                self.changes.record(current, max_delete_share=share)
            except TooManyDeletes as error:
                raise DeletionRefused(
                    f"not published: {error.deletes} of the {error.published} published manifests would be deleted "
                    f"at once, more than [manifests] max_delete_share = {share:g} allows (image root not mounted? "
                    "export emptied?); if that is intended: iiif-server manifests build --force",
                    snapshot,
                ) from None
        return snapshot

    # -- building ----------------------------------------------------------------

    def _read_vocabulary(self, snapshot: Snapshot) -> Vocabulary:
        """The vocabulary (empty if there is none beside the export); its bad rows become problems."""
        path = self.settings.vocabulary_file
        if not path.is_file():
            if self.settings.vocabulary:
                raise ConfigError(f"no vocabulary file at {path} (see [manifests] vocabulary)")
            return Vocabulary()
        table = read_export(path, what="vocabulary")
        missing = missing_columns(table.header, VOCABULARY_COLUMNS)
        if missing:
            raise ConfigError(f"vocabulary {path} has no column(s) {missing} (expected {list(VOCABULARY_COLUMNS)})")
        parsed = parse_vocabulary(table.rows, file=path.name)
        snapshot.problems.extend(parsed.problems)
        return parsed.vocabulary

    def _build_records(
        self,
        path: Path,
        snapshot: Snapshot,
        images: dict[str, Located | None],
        vocabulary: Vocabulary,
        treatment: Treatments,
        progress: Progress | None,
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
            if not record.access or not self.access.published(record.access):
                reason = f"access {record.access!r} is not published" if record.access else "no access level"
                snapshot.withheld.append((record, reason))
                continue
            hidden = next((where for where in found if treatment(where) == "hidden"), None)
            if hidden is not None:  # another record's level conceals it: a manifest must not reveal it
                snapshot.withheld.append((record, f"image {hidden.identifier} is hidden by its access level"))
                continue
            snapshot.published.append(record)
            located[record.inventory_number] = found
        groups = self._groups(snapshot.published)

        for done, record in enumerate(snapshot.published, start=1):
            refs = build.part_of_refs(groups, record, vocabulary)
            try:
                body = self._manifest_bytes(record, located[record.inventory_number], refs, vocabulary, treatment)
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
        snapshot.problems.sort(key=lambda p: (p.file, p.row))  # the export's rows first

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

    def _manifest_bytes(
        self, record: Record, located: list[Located], refs: list[Ref], vocabulary: Vocabulary, treatment: Treatments
    ) -> bytes:
        inputs = (
            f"{self._tag}|{_without_row(record)!r}|{vocabulary.translations(record)!r}"
            f"|{[(s.fingerprint, treatment(s)) for s in located]}|{refs!r}"
        )
        key = cache_key(_CACHE_GROUP, "p:" + hashlib.sha1(inputs.encode()).hexdigest())
        body = self.cache.get(key)
        if body is None:
            images = [self._image(s, treatment) for s in located]
            manifest = build.build_manifest(record, images, BASE, self.publisher, refs, vocabulary)
            body = build.to_bytes(manifest, build.image_auth(BASE, images))
            self.cache.put(key, body)
        return body

    def _image(self, located: Located, treatment: Treatments) -> ImageRef:
        width, height = self.inspector.dimensions(located)
        if treatment(located) != "degraded":
            return ImageRef(located.identifier, width, height)
        auth = self.access.services(BASE, located.identifier)
        return ImageRef(located.identifier, width, height, self.access.degraded_size, auth)

    def _groups(self, records: list[Record]) -> Groups:
        return Groups(self.settings.collections, records)

    def _build_collections(self, snapshot: Snapshot, vocabulary: Vocabulary, treatment: Treatments) -> None:
        thumbnails: dict[str, ImageRef] = {}
        for record in snapshot.published:
            try:
                thumbnails[record.inventory_number] = self._image(self.source.locate(record.images[0]), treatment)
            except IIIFError:
                continue  # vanished since its manifest was built: listed at the next rebuild
        tree = build.collection_tree(
            snapshot.published, self._groups(snapshot.published), thumbnails, BASE, self.publisher, vocabulary
        )
        for path, collection in tree.items():
            snapshot.documents[path] = _document(path, "Collection", build.to_bytes(collection))

    # -- freshness ---------------------------------------------------------------

    def _inputs_now(self) -> Inputs:
        """The export's and vocabulary's state now, for a catalogue that could not be built."""
        return Inputs(_stat(self.settings.source), {}, _stat(self.settings.vocabulary_file))

    def _changed(self, inputs: Inputs) -> bool:
        if _stat(self.settings.source) != inputs.export:
            return True
        if _stat(self.settings.vocabulary_file) != inputs.vocabulary:
            return True
        for identifier, located in inputs.images.items():
            if located is None:  # named but missing: has it arrived?
                try:
                    self.source.locate(identifier)
                except IIIFError:
                    continue
                return True
            if not self.source.current(located):
                return True
        return False


def _document(path: str, kind: str, body: bytes) -> Document:
    return Document(path, kind, body, hashlib.sha1(body).hexdigest()[:32])


def _without_row(record: Record) -> tuple[object, ...]:
    """A record's content: moving a row in the export must not change its manifest's hash."""
    return tuple(getattr(record, name) for name in record.__slots__ if name != "row")  # type: ignore[attr-defined]


def _stat(path: Path) -> tuple[int, int, int] | None:
    """(size, mtime_ns, inode) of a file, None if it cannot be stat'ed: any replacement changes it."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns, info.st_ino)


#: The stamp the access levels (``access/levels.py``) compare, the same as the catalogue's.
export_stamp = _stat
