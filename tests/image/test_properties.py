"""Property tests of the image endpoint: valid requests render as the spec says, garbage is a clean 400/404,
and the canonical Link is a true, idempotent round trip.

Expected sizes are computed here from the spec (Image API 3.0 §4.1-4.2, 2.1 §4.1-4.2) with Fraction arithmetic
and round-half-up, independently of the server's planner.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

from tests.conftest import decode

IMAGES = {"pattern.tif": (1000, 800), "big.tif": (4000, 3000)}
MAX_OUTPUT_AREA = 1_200_000  # keeps each example fast; far below the server's maxArea


def budget(max_examples: int) -> settings:
    """Hypothesis settings for tests that render images through the app fixture."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def rhu(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


# -- a valid request and its expected outcome, built together ------------------------------------------------------


@dataclass(frozen=True)
class Case:
    version: int
    identifier: str
    region: str
    size: str
    rotation: str
    quality: str
    fmt: str
    expected: tuple[int, int] | None  # output size before rotation; None: the request must be refused with 400
    box: tuple[int, int, int, int] | None = None  # the region in full-resolution pixels, clipped

    @property
    def url(self) -> str:
        ident = quote(self.identifier, safe="")
        return f"/iiif/{self.version}/{ident}/{self.region}/{self.size}/{self.rotation}/{self.quality}.{self.fmt}"


@st.composite
def decimals(draw: st.DrawFn, low: int, high: int, places: int = 3) -> tuple[str, Fraction]:
    """A decimal in [low, high] written as the grammar allows: 12, 12.5, 12.50, 0.25 or .25."""
    scale = 10**places
    value = Fraction(draw(st.integers(low * scale, high * scale)), scale)
    whole, frac = divmod(value.numerator * scale // value.denominator, scale)
    digits = f"{frac:0{places}d}"
    style = draw(st.sampled_from(["trim", "padded", "bare"]))
    if frac == 0 and style != "padded":
        return str(whole), value
    if style == "trim":
        digits = digits.rstrip("0")
    text = f".{digits}" if style == "bare" and whole == 0 else f"{whole}.{digits}"
    return text, value


@st.composite
def regions(draw: st.DrawFn, width: int, height: int) -> tuple[str, tuple[int, int, int, int] | None]:
    """A region string and the clipped box it selects (None if it lies outside the image)."""
    kind = draw(st.sampled_from(["full", "square", "pixels", "pixels", "percent"]))
    if kind == "full":
        return "full", (0, 0, width, height)
    if kind == "square":
        side = min(width, height)
        return "square", ((width - side) // 2, (height - side) // 2, side, side)
    if kind == "pixels":
        x, y = draw(st.integers(0, width + 50)), draw(st.integers(0, height + 50))
        w, h = draw(st.integers(1, 1500)), draw(st.integers(1, 1500))
        text = f"{x},{y},{w},{h}"
    else:
        (tx, px), (ty, py) = draw(decimals(0, 99)), draw(decimals(0, 99))
        (tw, pw), (th, ph) = draw(decimals(0, 100)), draw(decimals(0, 100))
        assume(pw > 0 and ph > 0)
        text = f"pct:{tx},{ty},{tw},{th}"
        x, y = rhu(px * width / 100), rhu(py * height / 100)
        w, h = max(1, rhu(pw * width / 100)), max(1, rhu(ph * height / 100))
    if x >= width or y >= height:
        return text, None
    return text, (x, y, min(w, width - x), min(h, height - y))


@st.composite
def sizes(draw: st.DrawFn, version: int, rw: int, rh: int) -> tuple[str, tuple[int, int], bool]:
    """A size string, the output it asks for from an rw×rh region, and whether it may upscale."""
    kind = draw(st.sampled_from(["max", "w,", ",h", "pct", "w,h", "!w,h"]))
    # ^max is left out: under the default maxArea (10^8) it renders ~11000×9000 px, too slow for a property test.
    caret = version == 3 and kind != "max" and draw(st.booleans())
    n = st.integers(1, 2000)
    if kind == "max":
        text, out = (draw(st.sampled_from(["max", "full"])) if version == 2 else "max"), (rw, rh)
    elif kind == "w,":
        w = draw(n)
        text, out = f"{w},", (w, max(1, rhu(Fraction(rh * w, rw))))
    elif kind == ",h":
        h = draw(n)
        text, out = f",{h}", (max(1, rhu(Fraction(rw * h, rh))), h)
    elif kind == "pct":
        t, p = draw(decimals(0, 200, places=2))
        assume(p > 0)
        text, out = f"pct:{t}", (max(1, rhu(rw * p / 100)), max(1, rhu(rh * p / 100)))
    elif kind == "w,h":
        w, h = draw(n), draw(n)
        text, out = f"{w},{h}", (w, h)
    else:
        w, h = draw(n), draw(n)
        s = min(Fraction(w, rw), Fraction(h, rh))
        text, out = f"!{w},{h}", (max(1, rhu(rw * s)), max(1, rhu(rh * s)))
    upscale_allowed = version == 2 or caret
    return ("^" if caret else "") + text, out, upscale_allowed


ROTATION_DEGREES = st.sampled_from([0, 90, 180, 270, 0, 180]) | st.integers(0, 360)


@st.composite
def rotations(draw: st.DrawFn) -> str:
    mirror = "!" if draw(st.booleans()) else ""
    if draw(st.booleans()):
        return f"{mirror}{draw(ROTATION_DEGREES)}"
    text, _ = draw(decimals(0, 359, places=draw(st.integers(1, 6))))
    return mirror + text


@st.composite
def valid_requests(
    draw: st.DrawFn, versions=(3, 2), identifiers=tuple(IMAGES), formats=None, rotation=None, qualities=None
) -> Case:
    version = draw(st.sampled_from(versions))
    identifier = draw(st.sampled_from(identifiers))
    width, height = IMAGES[identifier]
    region, box = draw(regions(width, height))
    expected = None
    if box is None:
        size = draw(st.sampled_from(["max", "100,", "pct:50"]))
    else:
        size, out, upscale_allowed = draw(sizes(version, box[2], box[3]))
        if upscale_allowed or (out[0] <= box[2] and out[1] <= box[3]):
            assume(out[0] * out[1] <= MAX_OUTPUT_AREA)
            expected = out
    rotation_text = draw(rotations() if rotation is None else rotation)
    quality = draw(st.sampled_from(qualities or ["default", "color", "gray", "bitonal"]))
    fmt = draw(st.sampled_from(formats or ["jpg", "png", "webp", "tif", "gif"]))
    return Case(version, identifier, region, size, rotation_text, quality, fmt, expected, box)


# -- 1. valid requests -----------------------------------------------------------------------------------------------


def expected_dimensions(case: Case) -> tuple[float, float]:
    """Decoded size for the case's rotation: swapped for 90/270, the rotated bounding box otherwise."""
    assert case.expected is not None
    w, h = case.expected
    degrees = float(Fraction(case.rotation.lstrip("!"))) % 360
    if degrees in (0, 180):
        return w, h
    if degrees in (90, 270):
        return h, w
    theta = math.radians(degrees)
    return w * abs(math.cos(theta)) + h * abs(math.sin(theta)), w * abs(math.sin(theta)) + h * abs(math.cos(theta))


@pytest.mark.slow
@budget(400)
@given(case=valid_requests())
@example(case=Case(3, "pattern.tif", "full", "333,", "0", "default", "png", (333, 266)))
@example(case=Case(3, "pattern.tif", "full", "1500,", "0", "default", "jpg", None))
@example(case=Case(2, "pattern.tif", "full", "1500,", "180", "gray", "png", (1500, 1200)))
@example(case=Case(3, "big.tif", "3840,2816,256,256", "^,200", "!90", "bitonal", "gif", (174, 200)))
def test_valid_requests_render_the_implied_size(app: Flask, case: Case) -> None:
    """Valid requests are never ≥ 500; 200 bodies decode to the size the spec implies; refusals are only 400."""
    with app.test_client() as client:
        response = client.get(case.url)
    event(f"v{case.version} status {response.status_code}")
    if case.expected is None:
        assert response.status_code == 400, (case.url, response.status_code, response.get_data(as_text=True))
        assert response.mimetype == "text/plain"
        return
    assert response.status_code == 200, (case.url, response.status_code, response.get_data(as_text=True))
    image = decode(response.data)
    want_w, want_h = expected_dimensions(case)
    slack = 0 if float(Fraction(case.rotation.lstrip("!"))) % 90 == 0 else 2
    assert abs(image.width - want_w) <= slack and abs(image.height - want_h) <= slack, (
        case.url,
        (image.width, image.height),
        (want_w, want_h),
    )


def block_colour_of(col: int, row: int) -> tuple[int, int, int]:
    return (col * 25 + 5, row * 30 + 10, 250 - col * 12 - row * 8)  # tests/conftest.py's block_colour


def turn(x: int, y: int, w: int, h: int, mirror: bool, degrees: int) -> tuple[int, int]:
    """Where pixel (x,y) of a w×h image goes: mirrored horizontally first, then turned clockwise."""
    if mirror:
        x = w - 1 - x
    for _ in range(degrees // 90):
        x, y, w, h = h - 1 - y, x, h, w
    return x, y


RIGHT_ANGLES = st.builds(lambda m, d: f"{m}{d}", st.sampled_from(["", "!"]), st.sampled_from([0, 90, 180, 270]))


@pytest.mark.slow
@budget(300)
@given(case=valid_requests(identifiers=("pattern.tif",), formats=["png"], rotation=RIGHT_ANGLES, qualities=["color"]))
@example(
    case=Case(
        3, "pattern.tif", "150,250,600,400", "^1200,100", "!270", "color", "png", (1200, 100), (150, 250, 600, 400)
    )
)
def test_content_lands_where_the_request_says(app: Flask, case: Case) -> None:
    """Lossless source, png: every block centre inside the region shows that block's colour at the position that
    region, size (any scale, distorted or not), mirroring and a right-angle rotation put it."""
    assume(case.expected is not None)
    assert case.box is not None and case.expected is not None
    x, y, w, h = case.box
    out_w, out_h = case.expected
    with app.test_client() as client:
        response = client.get(case.url)
    assert response.status_code == 200, (case.url, response.get_data(as_text=True))
    image = decode(response.data)
    mirror, degrees = case.rotation.startswith("!"), int(case.rotation.lstrip("!"))
    shrink = max(Fraction(w, out_w), Fraction(h, out_h), Fraction(1))
    margin = 4 * shrink + 2  # resampling kernel and level-rounding reach, in source pixels
    checked = 0
    for row in range(y // 100, (y + h - 1) // 100 + 1):
        for col in range(x // 100, (x + w - 1) // 100 + 1):
            cx, cy = col * 100 + 50, row * 100 + 50
            if not (x <= cx < x + w and y <= cy < y + h) or margin > 50:
                continue
            ox, oy = math.floor(Fraction(cx - x) * out_w / w), math.floor(Fraction(cy - y) * out_h / h)
            px, py = turn(ox, oy, out_w, out_h, mirror, degrees)
            got = tuple(int(v) for v in image(px, py))[:3]
            want = block_colour_of(col, row)
            assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 3, (case.url, (col, row), (px, py), got)
            checked += 1
    event("checked some block" if checked else "no block far enough from the edges")


# -- 2. garbage in one segment -----------------------------------------------------------------------------------------

_D = r"[0-9]+"
_N = r"[0-9]*\.?[0-9]*"  # deliberately loose: anything number-like is not counted as garbage
VALID = {
    "region": re.compile(rf"full|square|{_D},{_D},{_D},{_D}|pct:{_N},{_N},{_N},{_N}"),
    "size": re.compile(rf"\^?(max|full|{_D},|,{_D}|!?{_D},{_D}|pct:{_N})"),
    "rotation": re.compile(rf"!?{_N}"),
    "quality": re.compile(r"default|color|gray|bitonal"),
    "format": re.compile(r"jpg|png|webp|tif|gif"),
}
GOOD = {"region": "0,0,200,200", "size": "100,", "rotation": "0", "quality": "default", "format": "png"}
SPECIAL = ["", "%", "%%", "..", ".", "%2e%2e", "\x00", "a\x00", "%00", "-1", "1e3", "+5", "0x10", " full", "max ",
           "FULL", "Max", "nan", "inf", "\u2028", "\r\n", "\\", "…", "ø", "😀", "∞", "1,2,3", ",", "!", "^", "pct:",
           "pct:-1", "full.png", "default.png", "?", "#", ";", "..%2F"]  # fmt: skip


def has_no_known_bug_trigger(text: str) -> bool:
    """No non-ASCII decimal digits and no newline: each has its own test below, so that this property keeps
    looking for other faults."""
    return "\n" not in text and not any(unicodedata.category(c) == "Nd" and not c.isascii() for c in text)


def garbage_for(segment: str) -> st.SearchStrategy[str]:
    """Text that is not a valid value of ``segment``. Only the identifier may contain '/': in a parameter it would
    just split the path differently (a %2F is decoded before routing), so it cannot be expressed there."""
    if segment == "identifier":
        anything = st.characters(blacklist_categories=("Cs",))
        return st.text(anything, max_size=24) | st.sampled_from(SPECIAL) | st.text("0123456789.,:!^%/pctmaxful-")
    no_slash = st.characters(blacklist_categories=("Cs",), blacklist_characters="/")
    texts = (
        st.text(no_slash, max_size=24) | st.sampled_from(SPECIAL) | st.text("0123456789.,:!^%pctmaxful-", max_size=16)
    )
    return texts.filter(lambda t: "/" not in t and not VALID[segment].fullmatch(t)).filter(has_no_known_bug_trigger)


@functools.cache
def existing_stems(root: Path) -> frozenset[str]:
    """Every name an identifier could resolve to (with or without extension), NFC and case-folded."""
    stems = set()
    for path in root.rglob("*"):
        relative = unicodedata.normalize("NFC", path.relative_to(root).as_posix()).casefold()
        stems |= {relative, relative.rsplit(".", 1)[0]}
    return frozenset(stems)


def build_url(values: dict[str, str]) -> str:
    parts = [quote(values[name], safe="") for name in ("identifier", "region", "size", "rotation")]
    return f"/iiif/3/{'/'.join(parts)}/{quote(values['quality'], safe='')}.{quote(values['format'], safe='')}"


SEGMENTS = ["identifier", "region", "size", "rotation", "quality", "format"]


@budget(600)
@given(data=st.data(), segment=st.sampled_from(SEGMENTS))
def test_garbage_in_one_segment_is_a_clean_4xx(app: Flask, image_root: Path, data: st.DataObject, segment: str) -> None:
    """Garbage in any one segment is 400 (identifier: 400 or 404), never ≥ 500, with a one-line text/plain body."""
    garbage = data.draw(garbage_for(segment), label=segment)
    if segment == "identifier":
        assume(unicodedata.normalize("NFC", garbage).casefold().strip("/") not in existing_stems(image_root))
    url = build_url({"identifier": "pattern.tif", **GOOD, segment: garbage})
    with app.test_client() as client:
        response = client.get(url)
    allowed = (400, 404) if segment == "identifier" else (400,)
    assert response.status_code in allowed, (url, response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    assert body.endswith("\n") and len(body.splitlines()) == 1, repr(body)


NON_ASCII_DIGITS = st.sampled_from(["٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "०१२३४५६७८९", "０１２３４５６７８９", "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗"])


@budget(25)
@given(digits=NON_ASCII_DIGITS, segment=st.sampled_from(["region", "size", "rotation"]), data=st.data())
@example(digits="٠١٢٣٤٥٦٧٨٩", segment="rotation", data=None).via("Arabic-Indic zero as the rotation")
def test_non_ascii_digits_are_not_numbers(app: Flask, digits: str, segment: str, data: st.DataObject | None) -> None:
    """The Image API grammar's numbers are ASCII digits: '٠' or '１００' in a numeric segment is a 400, not a 200."""
    if data is None:
        value = digits[0]
    else:
        value = data.draw(st.sampled_from(list(digits)), label="digit")
        template = {"region": "{d},0,100,100", "size": "{d}50,", "rotation": "{d}"}[segment]
        value = template.format(d=value)
    url = build_url({"identifier": "pattern.tif", **GOOD, segment: value})
    with app.test_client() as client:
        response = client.get(url)
    assert response.status_code == 400, (url, response.status_code, response.headers.get("Link"))


@budget(25)
@given(
    segment=st.sampled_from(["region", "size", "rotation", "quality", "format"]),
    before=st.sampled_from(["", "full", "max", "0", "default", "png", "x"]),
    after=st.sampled_from(["", "full", "1", "y"]),
)
@example(segment="region", before="", after="").via("region '\\n'")
def test_newline_in_a_parameter_is_400(app: Flask, segment: str, before: str, after: str) -> None:
    """An encoded newline (%0A) in region/size/rotation/quality/format is an invalid parameter: 400 like any other
    garbage, not a routing 404 (which would wrongly say the image does not exist)."""
    url = build_url({"identifier": "pattern.tif", **GOOD, segment: f"{before}\n{after}"})
    with app.test_client() as client:
        response = client.get(url)
    assert response.status_code == 400, (url, response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "text/plain"


# -- 3. canonical round trip -----------------------------------------------------------------------------------------

CANONICAL = re.compile(r'<(?P<url>[^>]+)>;rel="canonical"')


def canonical_path(response) -> str:
    match = CANONICAL.search(response.headers.get("Link", ""))
    assert match, response.headers.get("Link")
    url = match["url"]
    assert url.startswith("http://localhost/iiif/3/"), url
    return url.removeprefix("http://localhost")


@budget(200)
@given(case=valid_requests(versions=(3,), formats=["png"]))
@example(case=Case(3, "pattern.tif", "pct:10,10,33.3,50", "!200,200", "!22.5", "gray", "png", (200, 150)))
def test_canonical_link_round_trips(app: Flask, case: Case) -> None:
    """The canonical URL renders byte-identical PNG and names itself as canonical (idempotent)."""
    assume(case.expected is not None and case.expected[0] * case.expected[1] <= 400_000)
    with app.test_client() as client:
        original = client.get(case.url)
        assert original.status_code == 200, (case.url, original.get_data(as_text=True))
        canonical = canonical_path(original)
        again = client.get(canonical)
        assert again.status_code == 200, (canonical, again.get_data(as_text=True))
        assert again.data == original.data, f"{case.url} and its canonical {canonical} differ"
        assert canonical_path(again) == canonical


@budget(25)
@given(whole=st.sampled_from([0, 90, 180, 359]), places=st.integers(7, 12), data=st.data())
@example(whole=0, places=11, data=None).via("rotation 0.00000000001 -> canonical '0'")
def test_canonical_rotation_keeps_the_requested_angle(
    app: Flask, whole: int, places: int, data: st.DataObject | None
) -> None:
    """A rotation with many decimals (the grammar accepts 12) must keep its value in the canonical Link.

    The canonical URL of a request must render the same image. Rounding the angle for the Link turns
    e.g. 0.00000000001 (rendered as an arbitrary rotation, with an alpha band) into 0 (no rotation).
    """
    digits = (
        "1".rjust(places, "0")
        if data is None
        else data.draw(st.from_regex(rf"[0-9]{{{places - 1}}}[1-9]", fullmatch=True))
    )
    url = f"/iiif/3/pattern.tif/0,0,300,200/max/{whole}.{digits}/default.png"
    with app.test_client() as client:
        original = client.get(url)
        assert original.status_code == 200
        canonical = canonical_path(original)
        again = client.get(canonical)
    requested = Fraction(f"{whole}.{digits}")
    written = Fraction(canonical.split("/")[-2])
    assert written == requested, f"{url}: canonical {canonical} names rotation {written}, not {requested}"
    assert again.data == original.data
