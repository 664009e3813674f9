"""IIIF Content State 1.0: a shared view (a region of a canvas of a manifest) as ``?iiif-content=``.

Pure. ``decode`` reads every form a link may carry (spec §2.2, §3.1): a plain ``http(s)`` URI of a
manifest or canvas (never content-state-encoded), or JSON (a full Annotation with motivation
``contentState``, or just its target) content-state-encoded (§6: base64url of the URI-encoded JSON,
padding removed; unencoded JSON is accepted too, being unambiguous). The target may be a Manifest, a
Canvas with ``partOf`` its manifest, a canvas URI with ``#xywh=``, or a SpecificResource with a
FragmentSelector. ``resolve`` then finds the view in one of this server's manifests; this server never
dereferences a URI from a link (an Annotation URI, §2.2.2, is refused: nothing here fetches it).

``encode`` writes the form the spec recommends for links (§3.1): the target body alone, encoded;
a manifest alone is its plain URI. The embed pages' "Share this view" (web/static/embed) mirrors it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

PARAMETER = "iiif-content"
MAX_LENGTH = 8192  # characters of the parameter; longer: refused (400)
ENCODE_SAFE = "!~*'()"  # what encodeURIComponent leaves as it is, besides letters, digits and "-_."
_XYWH = re.compile(r"xywh=(?:pixel:)?(\d+(?:\.\d+)?),(\d+(?:\.\d+)?),(\d+(?:\.\d+)?),(\d+(?:\.\d+)?)")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")

Region = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class View:
    """Where a shared link opens: a manifest, one of its canvases, a region of that canvas."""

    manifest_id: str  # the manifest's URI ("" when a canvas URI came alone: ``resolve`` finds its manifest)
    canvas_id: str = ""  # "": the first canvas
    region: Region | None = None  # x, y, w, h in canvas pixels; None: the whole canvas


@dataclass(frozen=True, slots=True)
class Opening:
    """A view found in a manifest: which canvas (0-based) and which region of it."""

    canvas_index: int
    region: Region | None


class InvalidContentState(ValueError):
    """The parameter is no content state this server can open (the message says why, in one line)."""


def encoding(plain: str) -> str:
    """Content-state-encoding (§6.1): encodeURIComponent, base64url, no padding."""
    return base64.urlsafe_b64encode(quote(plain, safe=ENCODE_SAFE).encode("ascii")).decode("ascii").rstrip("=")


def decoding(encoded: str) -> str:
    """The inverse of ``encoding``; InvalidContentState when it is no such string."""
    if not _BASE64URL.fullmatch(encoded) or len(encoded) % 4 == 1:
        raise InvalidContentState("iiif-content is neither a URI nor content-state-encoded (base64url)")
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        return unquote(raw.decode("utf-8"), errors="strict")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidContentState("iiif-content is not valid content-state-encoding") from None


def decode(value: str) -> View:
    """The view a ``iiif-content`` value denotes; InvalidContentState if it denotes none."""
    value = value.strip()
    if not value:
        raise InvalidContentState("iiif-content is empty")
    if len(value) > MAX_LENGTH:
        raise InvalidContentState(f"iiif-content is longer than {MAX_LENGTH} characters")
    if value.startswith(("http://", "https://")):
        return _from_uri(value)
    plain = value if value.startswith("{") else decoding(value)
    if plain.startswith(("http://", "https://")):
        return _from_uri(plain)  # an encoded URI: forgiven, though §6.2 says a URI is sent as it is
    try:
        document = json.loads(plain)
    except ValueError:
        raise InvalidContentState("iiif-content is not JSON once decoded") from None
    if not isinstance(document, dict):
        raise InvalidContentState("iiif-content must be a JSON object (an Annotation or its target)")
    return _from_document(document)


def encode(view: View) -> str:
    """The ``iiif-content`` value of a view: the manifest's plain URI, or the encoded target body
    ``{"id": "<canvas>#xywh=x,y,w,h", "type": "Canvas", "partOf": [{"id": "<manifest>", "type": "Manifest"}]}``
    (compact JSON, keys in that order, as ``JSON.stringify`` writes them)."""
    if not view.canvas_id:
        return view.manifest_id
    target = view.canvas_id + (f"#xywh={','.join(str(n) for n in view.region)}" if view.region else "")
    body = {"id": target, "type": "Canvas", "partOf": [{"id": view.manifest_id, "type": "Manifest"}]}
    return encoding(json.dumps(body, separators=(",", ":"), ensure_ascii=False))


def resolve(view: View, manifest: Mapping[str, Any]) -> Opening:
    """Where ``view`` opens in ``manifest`` (a Presentation 3.0 manifest as JSON); InvalidContentState
    when it is not in it (another manifest, an unknown canvas, a region outside the canvas)."""
    canvases: Sequence[Mapping[str, Any]] = manifest.get("items") or []
    ids = [str(canvas.get("id", "")) for canvas in canvases]
    canvas_id = view.canvas_id
    if view.manifest_id and view.manifest_id != manifest.get("id"):
        if canvas_id or view.manifest_id not in ids:  # a plain canvas URI arrives as the manifest's place
            raise InvalidContentState("iiif-content names another manifest than this page's")
        canvas_id = view.manifest_id
    if not canvas_id:
        if view.region is not None:
            raise InvalidContentState("iiif-content gives a region but no canvas")
        return Opening(0, None)
    if canvas_id not in ids:
        raise InvalidContentState("iiif-content names a canvas this manifest does not have")
    index = ids.index(canvas_id)
    region = view.region
    if region is not None:
        x, y, w, h = region
        width, height = int(canvases[index].get("width", 0)), int(canvases[index].get("height", 0))
        if w <= 0 or h <= 0 or x >= width or y >= height:
            raise InvalidContentState("iiif-content's region is empty or outside the canvas")
        region = (x, y, min(w, width - x), min(h, height - y))
    return Opening(index, region)


def _from_uri(uri: str) -> View:
    base, _, fragment = uri.partition("#")
    region = _region(fragment) if fragment else None
    return View("", base, region) if region else View(base)


def _from_document(document: Mapping[str, Any]) -> View:
    if document.get("type") == "Annotation":
        motivation = document.get("motivation")
        motivations = motivation if isinstance(motivation, list) else [motivation]
        if "contentState" not in motivations:
            raise InvalidContentState("iiif-content is an Annotation without the contentState motivation")
        target = document.get("target")
        if isinstance(target, list):  # several targets (a comparison view): the first one opens here
            target = target[0] if target else None
        if isinstance(target, str):
            return _from_uri(target)
        if not isinstance(target, dict):
            raise InvalidContentState("iiif-content's Annotation has no target")
        return _from_target(target)
    if "id" not in document and document.get("type") != "SpecificResource":
        raise InvalidContentState("iiif-content has neither an Annotation nor a target with an id")
    return _from_target(document)


def _from_target(target: Mapping[str, Any]) -> View:
    kind = target.get("type")
    if kind == "SpecificResource":
        source = target.get("source")
        if isinstance(source, str):
            source = {"id": source, "type": "Canvas"}
        if not isinstance(source, dict):
            raise InvalidContentState("iiif-content's SpecificResource has no source")
        selector = target.get("selector")
        selectors = selector if isinstance(selector, list) else [selector]
        fragment = next((s.get("value", "") for s in selectors if isinstance(s, dict) and "value" in s), "")
        view = _from_target(source)
        return View(view.manifest_id, view.canvas_id, _region(str(fragment)) or view.region)
    identifier = target.get("id")
    if not isinstance(identifier, str) or not identifier.startswith(("http://", "https://")):
        raise InvalidContentState("iiif-content's target id is not an http(s) URI")
    if kind == "Manifest":
        return View(identifier.partition("#")[0])
    if kind != "Canvas":
        raise InvalidContentState(f"iiif-content's target is a {kind!r}; this server opens Manifests and Canvases")
    canvas, _, fragment = identifier.partition("#")
    manifests = [p.get("id") for p in target.get("partOf") or [] if isinstance(p, dict) and p.get("type") == "Manifest"]
    manifest = manifests[0] if manifests and isinstance(manifests[0], str) else ""
    return View(manifest, canvas, _region(fragment) if fragment else None)


def _region(fragment: str) -> Region | None:
    """``xywh=x,y,w,h`` (pixels) as integers; percentages and other fragments are refused."""
    if not fragment:
        return None
    match = _XYWH.fullmatch(fragment.strip())
    if match is None:
        raise InvalidContentState(f"iiif-content's fragment {fragment[:40]!r} is not xywh=x,y,w,h in pixels")
    x, y, w, h = (round(float(group)) for group in match.groups())
    return (x, y, w, h)
