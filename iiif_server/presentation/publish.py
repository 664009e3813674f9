"""Write a snapshot as a static tree of files, for hosting the manifests anywhere.

The tree mirrors the live server's URLs exactly (``iiif/manifests/KH-DT-0001``,
``iiif/collections/top``, ``iiif/activity/all-changes``, ``iiif/activity/page-0``),
files without an extension, so a museum can move between the live server and a
static host without any id changing. The host should serve them as
``application/ld+json`` with ``Access-Control-Allow-Origin: *`` (docs/manifests.md).

The tree has no item page, so a manifest there links none: with
``homepage=False`` (no ``[manifests] item_homepage``) its ``homepage``, this
server's item page (``/items/{inventory_no}``), is left out.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..files import write_atomic
from . import discovery
from .catalogue import Document, Snapshot
from .changes import ChangeLog

READABLE = 0o644  # the web server serving the tree may run as another user


def write_tree(
    snapshot: Snapshot, out: Path, base: str, changes: ChangeLog | None, page_size: int, homepage: bool = True
) -> int:
    """Every document (and the Change Discovery stream) under ``out``; returns the number of files.

    ``homepage=False`` leaves out manifests' ``homepage`` (the live server's item page).
    """
    written = 0
    for document in snapshot.documents.values():
        write_atomic(out / document.path, _static(document, base, homepage), READABLE)
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


def _static(document: Document, base: str, homepage: bool) -> bytes:
    body = document.render(base)
    if homepage or document.type != "Manifest":
        return body
    data = json.loads(body)
    data.pop("homepage", None)
    return discovery.to_bytes(data)
