"""Change Discovery API 1.0 documents: the OrderedCollection and its OrderedCollectionPages.

Pure: activities come in from ``changes.ChangeLog``; the output is JSON-ready dicts
(iiif-prezi3 has no Activity Streams models). Pages are numbered from 0 and hold
``page_size`` activities each, oldest first: page ``n`` starts at stream position
``n * page_size``, so a page's content never changes once it is full (harvesters
and HTTP caches can keep it) and only the last page grows.

``@context`` is the Discovery context URI alone, as every example of the 1.0
spec has it (§3.4.1): that context document already imports the Activity
Streams context, and the spec allows an array only for extension contexts,
which must then come *before* the Discovery context.

An empty stream still has one page, page 0, with no items, and the collection's
``first`` and ``last`` point to it. The spec cannot be fully met with no
activities (``last`` and at least one page are REQUIRED, yet a page's
``orderedItems`` needs at least one item); keeping ``last`` keeps the one link
the harvesting algorithm (§3.5.1) starts from, and an empty page simply ends it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from iiif_server.presentation.changes import Activity

DISCOVERY_CONTEXT = "http://iiif.io/api/discovery/1/context.json"
#: Where this server publishes its stream, relative to the base URL; pages are ``{PAGE}{n}``.
STREAM = "iiif/activity/all-changes"
PAGE = "iiif/activity/page-"

#: The media type the spec recommends (§4.1) for collection and page responses.
MEDIA_TYPE = f'application/ld+json;profile="{DISCOVERY_CONTEXT}"'


def page_count(total: int, page_size: int) -> int:
    """Number of pages for ``total`` activities: at least 1 (an empty stream has one empty page)."""
    _check_sizes(total, page_size)
    return max(1, -(-total // page_size))


def ordered_collection(base_url: str, stream_path: str, total: int, page_size: int) -> dict[str, Any]:
    """The stream's entry point: ``totalItems`` and links to the first and last pages."""
    collection_id = _join(base_url, stream_path)
    return {
        "@context": DISCOVERY_CONTEXT,
        "id": collection_id,
        "type": "OrderedCollection",
        "totalItems": total,
        "first": _page_ref(collection_id, 0),
        "last": _page_ref(collection_id, page_count(total, page_size) - 1),
    }


def ordered_collection_page(
    base_url: str, stream_path: str, page: int, activities: Sequence[Activity], total: int, page_size: int
) -> dict[str, Any]:
    """Page ``page`` (0-based) holding ``activities``, which must be the stream from position
    ``page * page_size`` on, oldest first (as ``ChangeLog.activities`` returns them).

    ``prev``/``next`` follow from ``total``; ``activities`` may run past it when activities were
    appended after ``total`` was read, which only means ``next`` appears one request later.
    Raises ValueError for a page outside the stream (the route's 404) or activities that are
    not the page's slice, since ``startIndex`` would then lie.
    """
    pages = page_count(total, page_size)
    if not 0 <= page < pages:
        raise ValueError(f"page {page} is outside the stream's pages 0..{pages - 1}")
    start = page * page_size
    if len(activities) > page_size:
        raise ValueError(f"{len(activities)} activities do not fit a page of {page_size}")
    for offset, activity in enumerate(activities):
        if activity.index != start + offset:
            raise ValueError(f"activity {activity.index} is not at position {start + offset} of page {page}")
    collection_id = _join(base_url, stream_path)
    document: dict[str, Any] = {
        "@context": DISCOVERY_CONTEXT,
        "id": _page_id(collection_id, page),
        "type": "OrderedCollectionPage",
        "partOf": {"id": collection_id, "type": "OrderedCollection"},
        "startIndex": start,
    }
    if page > 0:
        document["prev"] = _page_ref(collection_id, page - 1)
    if page < pages - 1:
        document["next"] = _page_ref(collection_id, page + 1)
    document["orderedItems"] = [_item(base_url, activity) for activity in activities]
    return document


def format_time(moment: datetime) -> str:
    """xsd:dateTime in UTC with a ``Z``, whole seconds (``2026-11-25T10:00:00Z``), as the spec requires."""
    if moment.tzinfo is None:
        raise ValueError("end times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _item(base_url: str, activity: Activity) -> dict[str, Any]:
    return {
        "type": activity.type,
        "object": {"id": _join(base_url, activity.object_path), "type": activity.object_type},
        "endTime": format_time(activity.end_time),
    }


def _join(base_url: str, path: str) -> str:
    """``base/path`` with exactly one slash between, whatever the configured base ends with."""
    return f"{base_url.rstrip('/')}/{path.strip('/')}"


def _page_id(collection_id: str, page: int) -> str:
    """Pages are siblings of the collection (``.../activity/page-0``): no URL is a prefix of another,
    so the stream can be written as plain files for static hosting."""
    return f"{collection_id.rsplit('/', 1)[0]}/page-{page}"


def _page_ref(collection_id: str, page: int) -> dict[str, str]:
    return {"id": _page_id(collection_id, page), "type": "OrderedCollectionPage"}


def _check_sizes(total: int, page_size: int) -> None:
    if page_size < 1:
        raise ValueError(f"page size must be at least 1, got {page_size}")
    if total < 0:
        raise ValueError(f"total must be non-negative, got {total}")


def to_bytes(document: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as served and as written for static hosting."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
