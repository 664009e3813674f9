"""``/viewer?manifest=URL``: a full-page Mirador 4 viewer for one IIIF Presentation manifest.

Mirador is vendored under ``web/static/mirador/`` (see its README.md) and served as an asset
(``asset_url``: a fingerprinted name, gzip, ``immutable``), so the page needs no CDN and a repeat
visit downloads nothing. The page's own script is an asset too (``static/viewer/mirador-page.js``),
reading its settings from a JSON data block, so the page's CSP allows no inline script. The old
``/viewer/static/...?v=`` URLs answer 301 to the fingerprinted ones, for pages cached before.

``manifest`` may also be a manifest's path on this server (``iiif/manifests/KH-DT-0001``, what
every manifest's ``homepage`` links carry): the page resolves it against the request's public
base URL, so the link works under any host name or proxy prefix without embedding an absolute URL.

``iiif-content`` (IIIF Content State 1.0, ``web/contentstate.decode``) opens a shared view: its
manifest, at its canvas, fitted to its region (Mirador's ``initialViewerConfig.bounds``).

The page may be framed by the sites ``[site] frame_ancestors`` names (a museum may embed the
research viewer), as the embed pages may.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template_string, request
from werkzeug.wrappers import Response

from .. import current
from ..current import public_base
from ..errors import InvalidRequest, NotFound
from ..http import page_headers
from ..presentation.build import MANIFESTS
from . import contentstate
from .asset_routes import asset_url, assets

MIRADOR = "mirador/mirador.min.js"
PAGE_SCRIPT = "viewer/mirador-page.js"
MAX_MANIFEST_URL = 2048

#: Mirador runs from this site's assets; it reads manifests, info.json and tiles from anywhere
#: (a manifest may be another museum's), frames the IIIF access token services (any origin), and sets
#: inline styles (its Material UI / emotion styles are injected ``<style>`` elements: ``'unsafe-inline'``).
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' http: https: data: blob:; "
    "connect-src 'self' http: https:; frame-src 'self' http: https:; font-src 'self' data:; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'none'"
)

blueprint = Blueprint("viewer", __name__)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Viewer – iiif_server</title>
<style>html,body{margin:0;height:100%}#mirador{position:absolute;inset:0}</style>
</head><body>
<div id="mirador"></div>
<noscript><p>The viewer needs JavaScript. The manifest is at <a href="{{ manifest }}">{{ manifest }}</a>.</p></noscript>
<script type="application/json" id="viewer-config">{{ config|tojson }}</script>
<script src="{{ mirador }}"></script>
<script src="{{ script }}"></script>
</body></html>
"""


def local_manifest(url: str) -> bool:
    """A manifest's path relative to this server's base: ``iiif/manifests/`` and one plain segment."""
    name = url.removeprefix(f"{MANIFESTS}/")
    return name != url and name not in ("", ".", "..") and not any(c in name for c in "/\\?#")


def acceptable_manifest_url(url: str) -> bool:
    """An absolute http(s) URL with a host, a root-relative path ("/iiif/manifests/x"), or a manifest's
    path on this server ("iiif/manifests/x", see ``local_manifest``).

    Anything else (``javascript:``, ``data:``, protocol-relative ``//host``, control characters,
    whitespace) is refused, so the page never hands Mirador a URL it would resolve surprisingly.
    """
    if not url or len(url) > MAX_MANIFEST_URL or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        return False
    if "\\" in url:  # browsers read "/\host" as "//host"
        return False
    if local_manifest(url):
        return True
    if url.startswith("/"):
        return not url.startswith("//")
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def mirador_window(manifest: str, view: contentstate.View | None = None) -> dict[str, Any]:
    """Mirador's window settings: the manifest, and a shared view's canvas and region (in canvas
    pixels, which are Mirador's OpenSeadragon world coordinates: ``bounds`` is fitted on opening)."""
    window: dict[str, Any] = {"manifestId": manifest}
    if view is not None and view.canvas_id:
        window["canvasId"] = view.canvas_id
    if view is not None and view.region is not None:
        window["initialViewerConfig"] = {"bounds": list(view.region)}
    return window


def _manifest_of_canvas(canvas_id: str) -> str:
    """The manifest of one of this server's canvases (``{manifest}/canvas/{n}``, ``build._canvas``),
    for a link that names a canvas alone; "" for any other URI (another server's canvas)."""
    manifest, sep, _ = canvas_id.rpartition("/canvas/")
    base = public_base()
    return manifest if sep and local_manifest(manifest.removeprefix(base + "/")) else ""


@blueprint.get("/viewer")
def viewer() -> Response:
    manifest = request.args.get("manifest")
    shared = request.args.get(contentstate.PARAMETER)
    view = None
    if shared is not None:
        if len(shared) > contentstate.MAX_LENGTH:
            raise InvalidRequest(f"{contentstate.PARAMETER} is longer than {contentstate.MAX_LENGTH} characters")
        try:
            view = contentstate.decode(shared)
        except contentstate.InvalidContentState as error:
            raise InvalidRequest(f"{contentstate.PARAMETER}: {error}") from None
        manifest = view.manifest_id or _manifest_of_canvas(view.canvas_id)
        if not manifest:
            raise InvalidRequest(f"{contentstate.PARAMETER} names a canvas but not its manifest (partOf)")
    if manifest is None or not manifest.strip():
        raise InvalidRequest("missing query parameter: manifest (the URL of a IIIF Presentation manifest)")
    if not acceptable_manifest_url(manifest):
        raise InvalidRequest("manifest must be an absolute http(s) URL, a root-relative path or iiif/manifests/{id}")
    if local_manifest(manifest):
        manifest = f"{public_base()}/{manifest}"
    html = render_template_string(
        _PAGE,
        manifest=manifest,
        config={"window": mirador_window(manifest, view)},
        mirador=asset_url(MIRADOR),
        script=asset_url(PAGE_SCRIPT),
    )
    response = Response(html, mimetype="text/html")
    response.headers.update(page_headers(POLICY, current.settings().site.frame_ancestors))
    return response


@blueprint.get("/viewer/static/<path:filename>")
def static_file(filename: str) -> Response:
    """The viewer's files' old URLs (``?v=``, before ``/assets/``): 301 to the fingerprinted name, so a
    page someone cached still loads; anything else is 404."""
    try:
        assets().asset(filename)
    except KeyError:
        raise NotFound(f"no viewer file {filename}") from None
    return redirect(asset_url(filename), code=301)
