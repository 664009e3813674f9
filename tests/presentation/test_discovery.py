"""Change Discovery 1.0 OrderedCollection and OrderedCollectionPage documents."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from iiif_server.presentation.changes import Activity, ChangeLog
from iiif_server.presentation.discovery import (
    DISCOVERY_CONTEXT,
    format_time,
    ordered_collection,
    ordered_collection_page,
    page_count,
)

BASE = "https://iiif.example.org"
STREAM = "iiif/discovery/changes"
COLLECTION = f"{BASE}/{STREAM}"
PAGES = f"{BASE}/iiif/discovery"  # pages are siblings of the collection
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def page_ref(page: int) -> dict[str, str]:
    return {"id": f"{PAGES}/page-{page}", "type": "OrderedCollectionPage"}


def stream(total: int) -> list[Activity]:
    """``total`` activities, a minute apart, alternating kinds and object types."""
    kinds = ("Create", "Update", "Delete")
    return [
        Activity(
            index=i,
            type=kinds[i % 3],
            object_path=f"iiif/manifests/M-{i:03d}" if i % 4 else f"iiif/collections/c{i}",
            object_type="Manifest" if i % 4 else "Collection",
            end_time=T0 + timedelta(minutes=i),
        )
        for i in range(total)
    ]


def page_of(activities: list[Activity], page: int, page_size: int) -> dict[str, Any]:
    start = page * page_size
    return ordered_collection_page(
        BASE, STREAM, page, activities[start : start + page_size], len(activities), page_size
    )


@pytest.mark.parametrize(
    ("total", "expected"), [(0, 1), (1, 1), (19, 1), (20, 1), (21, 2), (40, 2), (41, 3), (21456, 1073)]
)
def test_page_count(total: int, expected: int) -> None:
    assert page_count(total, 20) == expected


def test_page_count_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        page_count(10, 0)
    with pytest.raises(ValueError):
        page_count(-1, 20)


def test_collection() -> None:
    document = ordered_collection(BASE, STREAM, 41, 20)
    assert document == {
        "@context": "http://iiif.io/api/discovery/1/context.json",
        "id": "https://iiif.example.org/iiif/discovery/changes",
        "type": "OrderedCollection",
        "totalItems": 41,
        "first": {"id": "https://iiif.example.org/iiif/discovery/page-0", "type": "OrderedCollectionPage"},
        "last": {"id": "https://iiif.example.org/iiif/discovery/page-2", "type": "OrderedCollectionPage"},
    }
    assert next(iter(document)) == "@context"  # the spec: SHOULD be the very first key


@pytest.mark.parametrize(("total", "last"), [(0, 0), (1, 0), (20, 0), (21, 1)])
def test_collection_last_page_at_boundaries(total: int, last: int) -> None:
    document = ordered_collection(BASE, STREAM, total, 20)
    assert document["totalItems"] == total
    assert document["first"] == page_ref(0)
    assert document["last"] == page_ref(last)


def test_single_page_document() -> None:
    activities = [
        Activity(0, "Create", "iiif/manifests/KH-DT-0001", "Manifest", T0),
        Activity(1, "Update", "iiif/collections/gom", "Collection", T0 + timedelta(hours=1, seconds=5)),
    ]
    document = ordered_collection_page(BASE, STREAM, 0, activities, 2, 20)
    assert document == {
        "@context": DISCOVERY_CONTEXT,
        "id": "https://iiif.example.org/iiif/discovery/page-0",
        "type": "OrderedCollectionPage",
        "partOf": {"id": "https://iiif.example.org/iiif/discovery/changes", "type": "OrderedCollection"},
        "startIndex": 0,
        "orderedItems": [
            {
                "type": "Create",
                "object": {"id": "https://iiif.example.org/iiif/manifests/KH-DT-0001", "type": "Manifest"},
                "endTime": "2026-11-25T10:00:00Z",
            },
            {
                "type": "Update",
                "object": {"id": "https://iiif.example.org/iiif/collections/gom", "type": "Collection"},
                "endTime": "2026-11-25T11:00:05Z",
            },
        ],
    }
    assert next(iter(document)) == "@context"
    assert json.loads(json.dumps(document)) == document  # JSON-ready as it is


def test_prev_and_next_links() -> None:
    activities = stream(41)
    first, middle, last = (page_of(activities, page, 20) for page in range(3))
    assert "prev" not in first
    assert first["next"] == page_ref(1)
    assert middle["prev"] == page_ref(0)
    assert middle["next"] == page_ref(2)
    assert last["prev"] == page_ref(1)
    assert "next" not in last
    assert [page["startIndex"] for page in (first, middle, last)] == [0, 20, 40]
    assert [len(page["orderedItems"]) for page in (first, middle, last)] == [20, 20, 1]
    assert last["orderedItems"] == [
        {
            "type": "Update",  # index 40: kinds[40 % 3]
            "object": {"id": f"{BASE}/iiif/collections/c40", "type": "Collection"},
            "endTime": "2026-11-25T10:40:00Z",
        }
    ]
    for page in (first, middle, last):
        assert page["partOf"] == {"id": COLLECTION, "type": "OrderedCollection"}


def test_exactly_one_full_page() -> None:
    document = page_of(stream(20), 0, 20)
    assert "prev" not in document
    assert "next" not in document
    assert len(document["orderedItems"]) == 20
    assert ordered_collection(BASE, STREAM, 20, 20)["last"] == page_ref(0)
    with pytest.raises(ValueError, match="outside"):
        ordered_collection_page(BASE, STREAM, 1, [], 20, 20)


def test_one_more_than_a_page() -> None:
    activities = stream(21)
    first, second = page_of(activities, 0, 20), page_of(activities, 1, 20)
    assert first["next"] == page_ref(1)
    assert "prev" not in first
    assert second["prev"] == page_ref(0)
    assert "next" not in second
    assert second["startIndex"] == 20
    assert second["orderedItems"] == [
        {
            "type": "Delete",  # index 20: kinds[20 % 3], a Collection (20 % 4 == 0)
            "object": {"id": f"{BASE}/iiif/collections/c20", "type": "Collection"},
            "endTime": "2026-11-25T10:20:00Z",
        }
    ]


def test_empty_stream_has_one_empty_page() -> None:
    assert ordered_collection(BASE, STREAM, 0, 20) == {
        "@context": DISCOVERY_CONTEXT,
        "id": COLLECTION,
        "type": "OrderedCollection",
        "totalItems": 0,
        "first": page_ref(0),
        "last": page_ref(0),
    }
    assert ordered_collection_page(BASE, STREAM, 0, [], 0, 20) == {
        "@context": DISCOVERY_CONTEXT,
        "id": f"{PAGES}/page-0",
        "type": "OrderedCollectionPage",
        "partOf": {"id": COLLECTION, "type": "OrderedCollection"},
        "startIndex": 0,
        "orderedItems": [],
    }


@pytest.mark.parametrize("page", [-1, 3, 100])
def test_page_outside_the_stream(page: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        ordered_collection_page(BASE, STREAM, page, [], 41, 20)


def test_activities_must_be_the_pages_slice() -> None:
    activities = stream(41)
    with pytest.raises(ValueError, match="not at position"):
        ordered_collection_page(BASE, STREAM, 1, activities[19:39], 41, 20)  # off by one
    with pytest.raises(ValueError, match="do not fit"):
        ordered_collection_page(BASE, STREAM, 0, activities[:21], 41, 20)


def test_activities_appended_after_the_count_are_kept() -> None:
    """A page built from a count read just before new activities arrived: items past totalItems, no next yet."""
    activities = stream(23)
    document = ordered_collection_page(BASE, STREAM, 1, activities[20:], 21, 20)
    assert [item["object"]["id"] for item in document["orderedItems"]] == [
        f"{BASE}/iiif/collections/c20",
        f"{BASE}/iiif/manifests/M-021",
        f"{BASE}/iiif/manifests/M-022",
    ]
    assert "next" not in document


def test_walking_back_from_last_yields_the_stream_newest_first() -> None:
    """The spec's harvesting algorithm (§3.5): start at ``last``, read each page in reverse, follow ``prev``."""
    activities = stream(45)
    pages = {f"{PAGES}/page-{n}": page_of(activities, n, 10) for n in range(page_count(45, 10))}
    collection = ordered_collection(BASE, STREAM, 45, 10)
    seen: list[dict[str, Any]] = []
    page: dict[str, Any] | None = pages[collection["last"]["id"]]
    while page is not None:
        seen.extend(reversed(page["orderedItems"]))
        page = pages[page["prev"]["id"]] if "prev" in page else None
    assert len(seen) == collection["totalItems"] == 45
    assert [item["endTime"] for item in seen] == [format_time(a.end_time) for a in reversed(activities)]
    assert [item["object"]["id"] for item in seen] == [f"{BASE}/{a.object_path}" for a in reversed(activities)]

    forward: list[dict[str, Any]] = []
    page = pages[collection["first"]["id"]]
    while page is not None:
        forward.extend(page["orderedItems"])
        page = pages[page["next"]["id"]] if "next" in page else None
    assert forward == seen[::-1]
    end_times = [item["endTime"] for item in forward]
    assert end_times == sorted(end_times)  # newest last


def test_slashes_in_base_and_stream_path() -> None:
    document = ordered_collection_page(f"{BASE}/", f"/{STREAM}/", 0, stream(1), 1, 20)
    assert document["id"] == f"{PAGES}/page-0"
    assert document["partOf"]["id"] == COLLECTION
    assert document["orderedItems"][0]["object"]["id"] == f"{BASE}/iiif/collections/c0"


def test_format_time() -> None:
    assert format_time(T0) == "2026-11-25T10:00:00Z"
    assert format_time(datetime(2026, 11, 25, 17, 0, 5, tzinfo=timezone(timedelta(hours=7)))) == "2026-11-25T10:00:05Z"
    with pytest.raises(ValueError):
        format_time(datetime(2026, 11, 25, 10, 0))


def test_from_the_change_log(tmp_path: Path) -> None:
    """ChangeLog output goes straight into pages."""
    log = ChangeLog(tmp_path / "changes.sqlite")
    log.record({f"iiif/manifests/M-{i}": ("Manifest", "h1") for i in range(3)}, T0)
    log.record(
        {"iiif/manifests/M-0": ("Manifest", "h2"), "iiif/manifests/M-1": ("Manifest", "h1")}, T0.replace(hour=11)
    )
    total = log.count()
    assert ordered_collection(BASE, STREAM, total, 2)["last"] == page_ref(2)
    last = ordered_collection_page(BASE, STREAM, 2, log.activities(4, 2), total, 2)
    assert last["startIndex"] == 4
    assert last["prev"] == page_ref(1)
    assert "next" not in last
    assert last["orderedItems"] == [
        {
            "type": "Delete",
            "object": {"id": f"{BASE}/iiif/manifests/M-2", "type": "Manifest"},
            "endTime": "2026-11-25T11:00:00Z",
        }
    ]
    middle = ordered_collection_page(BASE, STREAM, 1, log.activities(2, 2), total, 2)
    assert [(item["type"], item["object"]["id"], item["endTime"]) for item in middle["orderedItems"]] == [
        ("Create", f"{BASE}/iiif/manifests/M-2", "2026-11-25T10:00:00Z"),
        ("Update", f"{BASE}/iiif/manifests/M-0", "2026-11-25T11:00:00Z"),
    ]
