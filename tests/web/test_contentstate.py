"""Content State 1.0 (web/contentstate.py): every form a link may carry, the spec's own encoding
example, and views resolved in a manifest (pure; the pages' use is tested through HTTP and Chromium)."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iiif_server.web.contentstate import (
    InvalidContentState,
    Opening,
    View,
    decode,
    decoding,
    encode,
    encoding,
    resolve,
)

M = "https://heritage.example/iiif/manifests/KH-HV-0101"
C2 = f"{M}/canvas/2"
MANIFEST = {
    "id": M,
    "type": "Manifest",
    "items": [
        {"id": f"{M}/canvas/1", "type": "Canvas", "width": 4000, "height": 3000},
        {"id": C2, "type": "Canvas", "width": 2000, "height": 5000},
    ],
}
# Content State 1.0 §6.3.2: the condensed target body and its encoding, as the spec prints them.
SPEC_PLAIN = (
    '{"id":"https://example.org/object1/canvas7#xywh=1000,2000,1000,2000","type":"Canvas",'
    '"partOf":[{"id":"https://example.org/object1/manifest","type":"Manifest"}]}'
)
SPEC_ENCODED = (
    "JTdCJTIyaWQlMjIlM0ElMjJodHRwcyUzQSUyRiUyRmV4YW1wbGUub3JnJTJGb2JqZWN0MSUyRmNhbnZhczclMjN4eXdoJTNEMTAw"
    "MCUyQzIwMDAlMkMxMDAwJTJDMjAwMCUyMiUyQyUyMnR5cGUlMjIlM0ElMjJDYW52YXMlMjIlMkMlMjJwYXJ0T2YlMjIlM0ElNUIl"
    "N0IlMjJpZCUyMiUzQSUyMmh0dHBzJTNBJTJGJTJGZXhhbXBsZS5vcmclMkZvYmplY3QxJTJGbWFuaWZlc3QlMjIlMkMlMjJ0eXBl"
    "JTIyJTNBJTIyTWFuaWZlc3QlMjIlN0QlNUQlN0Q"
)


def test_the_specs_encoding_example() -> None:
    assert encoding(SPEC_PLAIN) == SPEC_ENCODED
    assert decoding(SPEC_ENCODED) == SPEC_PLAIN
    assert decode(SPEC_ENCODED) == View(
        "https://example.org/object1/manifest", "https://example.org/object1/canvas7", (1000, 2000, 1000, 2000)
    )


def test_encode_writes_the_target_body_and_a_manifest_as_its_plain_uri() -> None:
    view = View(M, C2, (10, 20, 300, 400))
    value = encode(view)
    assert json.loads(decoding(value)) == {
        "id": f"{C2}#xywh=10,20,300,400",
        "type": "Canvas",
        "partOf": [{"id": M, "type": "Manifest"}],
    }
    assert decode(value) == view
    assert encode(View(M)) == M and decode(M) == View(M)


def test_encoding_is_encodeURIComponent_then_base64url() -> None:
    # encodeURIComponent leaves !~*'() as they are; Python's quote would escape them
    assert decoding(encoding("a!~*'()b é/")) == "a!~*'()b é/"
    assert "=" not in encoding("x") and "+" not in encoding("~~~>>>") and "/" not in encoding("???")


@pytest.mark.parametrize(
    "document",
    [
        {"type": "Annotation", "motivation": ["contentState"], "target": {"id": M, "type": "Manifest"}},
        {"type": "Annotation", "motivation": "contentState", "target": M},
        {"@context": "http://iiif.io/api/presentation/3/context.json", "id": M, "type": "Manifest"},
    ],
)
def test_forms_naming_a_manifest(document: dict[str, object]) -> None:
    assert decode(encoding(json.dumps(document))) == View(M)
    assert decode(json.dumps(document)) == View(M)  # unencoded JSON: unambiguous, accepted


def test_a_full_annotation_with_a_region_and_a_specific_resource() -> None:
    annotation = {
        "type": "Annotation",
        "motivation": ["contentState"],
        "target": {"id": f"{C2}#xywh=1,2,3,4", "type": "Canvas", "partOf": [{"id": M, "type": "Manifest"}]},
    }
    assert decode(encoding(json.dumps(annotation))) == View(M, C2, (1, 2, 3, 4))
    specific = {
        "type": "SpecificResource",
        "source": {"id": C2, "type": "Canvas", "partOf": [{"id": M, "type": "Manifest"}]},
        "selector": {"type": "FragmentSelector", "value": "xywh=5,6,7,8"},
    }
    assert decode(encoding(json.dumps(specific))) == View(M, C2, (5, 6, 7, 8))


def test_a_plain_canvas_uri_resolves_to_its_manifest() -> None:
    view = decode(f"{C2}#xywh=100,200,300,400")
    assert view == View("", C2, (100, 200, 300, 400))
    assert resolve(view, MANIFEST) == Opening(1, (100, 200, 300, 400))
    assert resolve(decode(C2), MANIFEST) == Opening(1, None)


def test_resolve_clips_the_region_and_defaults_to_the_first_canvas() -> None:
    assert resolve(View(M), MANIFEST) == Opening(0, None)
    assert resolve(View(M, C2, (1900, 4900, 500, 500)), MANIFEST) == Opening(1, (1900, 4900, 100, 100))


@pytest.mark.parametrize(
    ("view", "reason"),
    [
        (View("https://elsewhere.example/manifest"), "another manifest"),
        (View(M, f"{M}/canvas/9"), "does not have"),
        (View(M, C2, (2000, 0, 10, 10)), "outside the canvas"),
        (View(M, C2, (0, 0, 0, 10)), "empty"),
    ],
)
def test_resolve_refuses_views_not_in_the_manifest(view: View, reason: str) -> None:
    with pytest.raises(InvalidContentState, match=reason):
        resolve(view, MANIFEST)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("x" * 9000, "longer than"),
        ("javascript:alert(1)", "neither a URI"),
        ("a", "neither a URI"),  # one base64url character cannot be decoded
        (encoding("not json"), "not JSON"),
        (encoding("[1, 2]"), "JSON object"),
        (encoding('{"type": "Annotation", "motivation": "bookmarking", "target": "x"}'), "contentState"),
        (encoding('{"id": "https://a.example/r", "type": "Range"}'), "Range"),
        (encoding('{"id": "file:///etc/passwd", "type": "Manifest"}'), "http"),
        (f"{C2}#xywh=percent:1,2,3,4", "xywh"),
        (f"{C2}#t=10", "xywh"),
        (base64.urlsafe_b64encode(b"%E0%A4").decode().rstrip("="), "encoding"),  # percent-escapes of no UTF-8
    ],
)
def test_what_is_no_content_state_is_refused_in_one_line(value: str, reason: str) -> None:
    with pytest.raises(InvalidContentState, match=reason) as caught:
        decode(value)
    assert "\n" not in str(caught.value)


@given(st.text(max_size=300))
def test_any_string_is_a_view_or_one_clear_refusal(value: str) -> None:
    try:
        view = decode(value)
    except InvalidContentState as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert isinstance(view, View)


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 10**6), st.integers(1, 10**6), st.text(max_size=20))
def test_encode_then_decode_is_the_view(x: int, y: int, w: int, h: int, name: str) -> None:
    manifest = f"https://h.example/iiif/manifests/{encoding(name) or 'x'}"
    view = View(manifest, f"{manifest}/canvas/1", (x, y, w, h))
    assert decode(encode(view)) == view
