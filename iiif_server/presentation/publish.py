"""Write a snapshot as a static tree of files, for hosting the manifests anywhere.

The tree mirrors the live server's URLs exactly (``iiif/manifests/KH-DT-0001``,
``iiif/collections/top``, ``iiif/activity/all-changes``, ``iiif/activity/page-0``),
files without an extension, so a museum can move between the live server and a
static host without any id changing. The host should serve them as
``application/ld+json`` with ``Access-Control-Allow-Origin: *`` (docs/manifests.md).
"""

from __future__ import annotations

from pathlib import Path

from ..files import write_atomic
from . import discovery
from .catalogue import Snapshot
from .changes import ChangeLog

READABLE = 0o644  # the web server serving the tree may run as another user


def write_tree(snapshot: Snapshot, out: Path, base: str, changes: ChangeLog | None, page_size: int) -> int:
    """Every document (and the Change Discovery stream) under ``out``; returns the number of files."""
    written = 0
    for document in snapshot.documents.values():
        write_atomic(out / document.path, document.render(base), READABLE)
        written += 1
    if changes is not None:
        total = changes.count()
        write_atomic(
            out / discovery.STREAM,
            discovery.to_bytes(discovery.ordered_collection(base, discovery.STREAM, total, page_size)),
            READABLE,
        )
        for page in range(discovery.page_count(total, page_size)):
            activities = changes.activities(page * page_size, page_size)
            listing = discovery.ordered_collection_page(base, discovery.STREAM, page, activities, total, page_size)
            write_atomic(out / f"{discovery.PAGE}{page}", discovery.to_bytes(listing), READABLE)
        written += 1 + discovery.page_count(total, page_size)
    return written
