"""Write a snapshot as a static tree of files, for hosting the manifests anywhere.

The tree mirrors the live server's URLs exactly (``iiif/manifests/KH-DT-0001``,
``iiif/collections/top``, ``iiif/activity/all-changes``, ``iiif/activity/page-0``),
files without an extension, so a museum can move between the live server and a
static host without any id changing. The host should serve them as
``application/ld+json`` with ``Access-Control-Allow-Origin: *`` (docs/manifests.md).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from . import discovery
from .catalogue import Snapshot
from .changes import ChangeLog


def write_tree(snapshot: Snapshot, out: Path, base: str, changes: ChangeLog | None, page_size: int) -> int:
    """Every document (and the Change Discovery stream) under ``out``; returns the number of files."""
    written = 0
    for document in snapshot.documents.values():
        _write(out / document.path, document.render(base))
        written += 1
    if changes is not None:
        total = changes.count()
        _write(
            out / discovery.STREAM,
            discovery.to_bytes(discovery.ordered_collection(base, discovery.STREAM, total, page_size)),
        )
        for page in range(discovery.page_count(total, page_size)):
            activities = changes.activities(page * page_size, page_size)
            listing = discovery.ordered_collection_page(base, discovery.STREAM, page, activities, total, page_size)
            _write(out / f"{discovery.PAGE}{page}", discovery.to_bytes(listing))
        written += 1 + discovery.page_count(total, page_size)
    return written


def _write(path: Path, body: bytes) -> None:
    """Atomic: a host serving the tree while it is rewritten never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(body)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
