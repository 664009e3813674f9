"""IIIF Content State 1.0: a shared view (a region of a canvas of a manifest) as ``?iiif-content=``.

CONTRACT STUB: the interface the embed and item pages code against; the implementation follows
the spec (content-state encoding: base64url of the URI-encoded JSON, padding removed; plain
``http(s)`` URIs of a manifest or canvas also accepted).
"""

from __future__ import annotations

from dataclasses import dataclass

PARAMETER = "iiif-content"
MAX_LENGTH = 8192  # characters of the parameter; longer: refused (400)


@dataclass(frozen=True, slots=True)
class View:
    """Where a shared link opens: a manifest, one of its canvases, a region of that canvas."""

    manifest_id: str  # the manifest's URI
    canvas_id: str = ""  # "": the first canvas
    region: tuple[int, int, int, int] | None = None  # x, y, w, h in canvas pixels; None: the whole canvas


class InvalidContentState(ValueError):
    """The parameter is no content state this server can open (the message says why, in one line)."""


def decode(value: str) -> View:
    """The view a ``iiif-content`` value denotes; InvalidContentState if it denotes none."""
    raise InvalidContentState("content state links are not supported yet")


def encode(view: View) -> str:
    """The ``iiif-content`` value of a view: an Annotation with motivation ``contentState``."""
    raise NotImplementedError
