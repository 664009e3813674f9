"""Records -> Manifests and Collections, pure: no files, no HTTP."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from iiif_server.presentation.build import (
    Groups,
    ImageRef,
    Publisher,
    build_manifest,
    collection_tree,
    slug,
    thumbnail,
    to_bytes,
)
from iiif_server.presentation.records import Record, Text
from iiif_server.presentation.validate import problems

BASE = "https://iiif.example.org"
PUBLISHER = Publisher(
    provider_id="https://museum.example/#org",
    provider_label=Text("Bảo tàng", "Museum"),
    provider_homepage="https://museum.example/",
    collection_label=Text("Bộ sưu tập", "Collection"),
    paged_types=("tư liệu",),
)


def record(inventory: str = "KH-1", **changes: Any) -> Record:
    base = Record(
        row=2,
        inventory_number=inventory,
        title=Text("Tiêu đề", "Title"),
        description=Text("", ""),
        object_type="hiện vật",
        heritage_rank="",
        date="",
        nav_date=None,
        period="",
        material="",
        dimensions="",
        site="",
        access="public",
        rights="",
        attribution=Text(),
        images=("a.tif",),
    )
    return replace(base, **changes)


def as_json(resource: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(to_bytes(resource))
    return data


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Di tích kiến trúc", "di-tich-kien-truc"), ("Đồng Nai", "dong-nai"), ("  ", "x"), ("A/B c", "a-b-c")],
)
def test_slug(value: str, expected: str) -> None:
    assert slug(value) == expected


def test_minimal_manifest_is_valid_and_has_no_empty_fields() -> None:
    manifest = as_json(build_manifest(record(), [ImageRef("a.tif", 300, 200)], BASE, PUBLISHER))
    assert problems(manifest) == []
    assert "summary" not in manifest and "rights" not in manifest and "navDate" not in manifest
    assert manifest["requiredStatement"]["value"] == {"vi": ["Bảo tàng"], "en": ["Museum"]}  # the provider
    assert manifest["thumbnail"][0]["width"] == 300  # never upscaled past the source
    assert manifest["metadata"] == [
        {"label": {"vi": ["Loại hình"], "en": ["Object type"]}, "value": {"vi": ["hiện vật"]}},
        {"label": {"vi": ["Số hiệu"], "en": ["Inventory number"]}, "value": {"none": ["KH-1"]}},
    ]


def test_untitled_record_is_labelled_by_inventory_number() -> None:
    manifest = as_json(build_manifest(record(title=Text()), [ImageRef("a.tif", 10, 10)], BASE, PUBLISHER))
    assert manifest["label"] == {"none": ["KH-1"]}


def test_paged_only_for_documents_with_several_pages() -> None:
    pages = [ImageRef("p1.tif", 800, 1000), ImageRef("p2.tif", 800, 1000)]
    document = as_json(build_manifest(record(object_type="tư liệu"), pages, BASE, PUBLISHER))
    assert document["behavior"] == ["paged"]
    single = as_json(build_manifest(record(object_type="tư liệu"), pages[:1], BASE, PUBLISHER))
    assert "behavior" not in single
    views = as_json(build_manifest(record(), pages, BASE, PUBLISHER))
    assert "behavior" not in views and views["items"][1]["label"]["en"] == ["Image 2"]


def test_navdate_and_identifier_escaping() -> None:
    manifest = as_json(
        build_manifest(
            record("KH 1#2", nav_date=datetime(1793, 1, 1, tzinfo=UTC)),
            [ImageRef("hiện vật/a b.tif", 100, 50)],
            BASE,
            PUBLISHER,
        )
    )
    assert manifest["id"] == f"{BASE}/iiif/manifests/KH%201%232"
    assert manifest["navDate"] == "1793-01-01T00:00:00Z"
    service = manifest["items"][0]["items"][0]["items"][0]["body"]["service"][0]["id"]
    assert service == f"{BASE}/iiif/3/hi%E1%BB%87n%20v%E1%BA%ADt%2Fa%20b.tif"


def test_thumbnail_fits_the_box() -> None:
    wide = thumbnail(BASE, ImageRef("a", 8000, 2000), 400)
    assert (wide.width, wide.height) == (400, 100)
    tall = thumbnail(BASE, ImageRef("a", 1000, 4000), 400)
    assert (tall.width, tall.height) == (100, 400)
    assert str(tall.id).endswith("/full/100,400/0/default.jpg")


def test_collection_tree_nests_and_skips_records_without_thumbnail() -> None:
    records = [
        record("A", object_type="hiện vật", site="Kho"),
        record("B", object_type="tư liệu", site="Kho"),
        record("C", object_type="hiện vật", site=""),
    ]
    thumbnails = {r.inventory_number: ImageRef("a.tif", 100, 100) for r in records[:2]}
    tree = collection_tree(records, Groups(("object_type", "site"), records), thumbnails, BASE, PUBLISHER)
    assert sorted(tree) == [
        "iiif/collections/by-object-type",
        "iiif/collections/by-site",
        "iiif/collections/object-type/hien-vat",
        "iiif/collections/object-type/tu-lieu",
        "iiif/collections/site/kho",
        "iiif/collections/top",
    ]
    artefacts = as_json(tree["iiif/collections/object-type/hien-vat"])
    assert [m["id"] for m in artefacts["items"]] == [f"{BASE}/iiif/manifests/A"]  # C has no thumbnail yet
    for collection in tree.values():
        assert problems(as_json(collection)) == []
    flat = collection_tree(records, Groups((), records), thumbnails, BASE, PUBLISHER)
    assert list(flat) == ["iiif/collections/top"]
    assert [m["type"] for m in as_json(flat["iiif/collections/top"])["items"]] == ["Manifest", "Manifest"]


def test_groups_give_distinct_slugs_to_values_that_fold_together() -> None:
    records = [record("A", site="Đà Lạt"), record("B", site="Da Lat"), record("C", site="Đà Lạt")]
    groups = Groups(("site",), records)
    slugs = {value: found for value, (found, _) in groups.by_field["site"].items()}
    assert sorted(slugs.values()) == ["da-lat", "da-lat-2"]
    assert groups.memberships(records[2]) == [("site", "Đà Lạt")]
    assert groups.path("site", "Đà Lạt") == f"iiif/collections/site/{slugs['Đà Lạt']}"
    assert groups.path("site", "Da Lat") == f"iiif/collections/site/{slugs['Da Lat']}"
