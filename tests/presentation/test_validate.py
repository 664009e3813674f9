"""The Presentation 3.0 validator against the official validator's own fixtures and a hand-built manifest.

Fixtures and their good/bad classification (``fixtures/EXPECTED.json``) come from
IIIF/presentation-validator; the error paths below are the ones its tests expect.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from iiif_server.presentation.validate import MAX_PROBLEMS, is_valid, problems

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "EXPECTED.json").read_text("utf-8"))

# For each bad fixture, (path, text) pairs that must appear in one problem line: the reason it is bad.
REASONS: dict[str, list[tuple[str, str]]] = {
    "broken_simple_image.json": [
        ("provider/0/logo/0", "'id' is a required property"),
        ("provider/0/seeAlso/0", "'id' is a required property"),
        ("items/0", "'id' is a required property"),
    ],
    "broken_choice.json": [("items/0", "'height' is a dependency of 'width'")],
    "broken_collection.json": [("(root)", "'label' is a required property")],
    "broken_embedded_annos.json": [("items/0/items/0", "'annotations' was unexpected")],
    "non_cc_license.json": [("rights", "Rights URI isn't from either Creative Commons or RightsStatements.org")],
    "collection_of_canvases.json": [("items/0", "'Canvas' is not allowed here"), ("items/1", "'Range' is not allowed")],
    "broken_service.json": [
        ("thumbnail/0/service", "is not of type 'array'"),
        ("items/0/items/0/items/0/body/service", "is not of type 'array'"),
    ],
    "old_format_label.json": [
        ("label", "is not of type 'object'"),
        ("(root)", "'sequences' was unexpected"),
        ("(root)", "'items' is a required property"),
    ],
    "rights_lang_issues.json": [
        ("label", "'@none' does not match"),
        ("metadata/0/label", "'@none' does not match"),
        ("rights", "'https://creativecommons.org/publicdomain/zero/1.0/' matches none of the allowed forms"),
    ],
}

# Every path the official validator reports (tests/test_validator.py: test_version3errors, test_lang_rights).
OFFICIAL_PATHS: dict[str, set[str]] = {
    "broken_simple_image.json": {"provider/0/logo/0", "provider/0/seeAlso/0", "items/0"},
    "broken_service.json": {"thumbnail/0/service", "items/0/items/0/items/0/body/service"},
    "old_format_label.json": {"label", "(root)"},
    "rights_lang_issues.json": {
        "label",
        "items/0/label",
        "items/0",
        "items/0/items/0/items/0/body/label",
        "rights",
        *(f"metadata/{i}/{part}" for i in range(10) for part in ("label", "value")),
    },
}


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text("utf-8"))


def test_every_bad_fixture_has_reasons() -> None:
    assert set(REASONS) == set(EXPECTED["bad"])


@pytest.mark.parametrize("name", EXPECTED["good"])
def test_good_fixture_has_no_problems(name: str) -> None:
    assert problems(load(name)) == []
    assert is_valid(load(name))


@pytest.mark.parametrize("name", EXPECTED["bad"])
def test_bad_fixture_fails_for_the_right_reason(name: str) -> None:
    found = problems(load(name), limit=None)
    assert found
    assert not is_valid(load(name))
    for path, text in REASONS[name]:
        assert any(line.startswith(f"{path}: ") and text in line for line in found), (path, text, found)
    for line in found:
        assert "\n" not in line
        assert len(line) < 300, line


@pytest.mark.parametrize("name", sorted(OFFICIAL_PATHS))
def test_bad_fixture_paths_match_the_official_validator(name: str) -> None:
    paths = {line.split(": ", 1)[0] for line in problems(load(name), limit=None)}
    assert paths == OFFICIAL_PATHS[name]


def test_problems_are_capped() -> None:
    document = load("rights_lang_issues.json")
    assert len(problems(document, limit=None)) == 25
    assert len(problems(document)) == MAX_PROBLEMS


BASE = "https://iiif.example.org"


def minimal_manifest() -> dict[str, Any]:
    canvas = f"{BASE}/manifest/canvas/1"
    image = {
        "id": f"{BASE}/image/a/full/max/0/default.jpg",
        "type": "Image",
        "format": "image/jpeg",
        "width": 1000,
        "height": 800,
        "service": [{"id": f"{BASE}/image/a", "type": "ImageService3", "profile": "level2"}],
    }
    annotation = {
        "id": f"{canvas}/image",
        "type": "Annotation",
        "motivation": "painting",
        "body": image,
        "target": canvas,
    }
    page = {"id": f"{canvas}/page", "type": "AnnotationPage", "items": [annotation]}
    return {
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "id": f"{BASE}/manifest",
        "type": "Manifest",
        "label": {"vi": ["Bình gốm"]},
        "items": [{"id": canvas, "type": "Canvas", "width": 1000, "height": 800, "items": [page]}],
    }


def test_minimal_manifest_is_valid() -> None:
    assert problems(minimal_manifest()) == []
    assert problems(MappingProxyType(minimal_manifest())) == []


def test_missing_id_is_named() -> None:
    document = minimal_manifest()
    del document["id"]
    assert problems(document) == ["(root): 'id' is a required property"]


def test_string_width_is_named_with_its_path() -> None:
    document = minimal_manifest()
    document["items"][0]["width"] = "x"
    assert problems(document) == ["items/0/width: 'x' is not of type 'integer'"]


def test_unknown_document_type_is_named() -> None:
    document = minimal_manifest()
    document["type"] = "Sequence"
    assert problems(document) == ["(root): 'Sequence' is not allowed here"]


def test_long_values_are_abbreviated() -> None:
    document = minimal_manifest()
    document["items"][0]["items"][0]["items"][0]["body"]["service"] = {"id": "x" * 500, "type": "ImageService3"}
    (line,) = problems(document)
    assert line.startswith("items/0/items/0/items/0/body/service: {")
    assert line.endswith("is not of type 'array'")
    assert len(line) < 200
