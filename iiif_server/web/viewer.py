"""``/viewer?manifest=URL``: a full-page Mirador 4 viewer for one IIIF Presentation manifest.

Mirador is vendored under ``web/static/mirador/`` (see its README.md) and served by this
server at ``/viewer/static/...``, so the page needs no CDN. The script URL carries a
content hash (``?v=``), which makes a one-year ``immutable`` cache safe: a refreshed bundle
gets a new URL.

``manifest`` may also be a manifest's path on this server (``iiif/manifests/KH-DT-0001``, what
every manifest's ``homepage`` links carry): the page resolves it against the request's public
base URL, so the link works under any host name or proxy prefix without embedding an absolute URL.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, current_app, render_template_string, request, send_from_directory, url_for
from werkzeug.wrappers import Response

from ..http import base_url, error_body
from ..presentation.build import MANIFESTS

STATIC = Path(__file__).resolve().parent / "static"
MIRADOR = "mirador/mirador.min.js"
STATIC_MAX_AGE = 365 * 24 * 3600
MAX_MANIFEST_URL = 2048

blueprint = Blueprint("viewer", __name__)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Viewer – iiif_server</title>
<style>html,body{margin:0;height:100%}#mirador{position:absolute;inset:0}</style>
</head><body>
<div id="mirador"></div>
<noscript><p>The viewer needs JavaScript. The manifest is at <a href="{{ manifest }}">{{ manifest }}</a>.</p></noscript>
<script src="{{ script }}"></script>
<script>
const mirador = Mirador.viewer({
  id: "mirador",
  windows: [{manifestId: {{ manifest|tojson }}}],
  window: {allowClose: false, allowMaximize: false, allowFullscreen: true, sideBarOpen: false, defaultView: "single"},
  workspace: {allowNewWindows: false},
  workspaceControlPanel: {enabled: false}
});
// Mirador 4.0.0 gives OpenSeadragon an image service's tiles once (OpenSeadragonTileSource ignores a
// later info.json of the same service), so after an Auth 1.0 login it would go on drawing the
// preview tier, and after a logout the full one. When an info.json answer changes tier (its "id"),
// ask for it again: the request takes the old tiles away, the answer brings the new ones.
(function (store) {
  const tiers = {};
  store.subscribe(function () {
    const responses = Mirador.selectInfoResponses(store.getState()) || {};
    Object.keys(responses).forEach(function (infoId) {
      const response = responses[infoId];
      if (!response.json || response.isFetching) return;
      const tier = response.json.id || response.json["@id"];
      const before = tiers[infoId];
      tiers[infoId] = tier;
      if (before !== undefined && before !== tier) store.dispatch(Mirador.requestInfoResponse(infoId, response.json));
    });
  });
})(mirador.store);
</script>
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


def _plain(message: str, status: int) -> Response:
    body, headers = error_body(message)
    return Response(body, status=status, headers=headers)


@functools.cache
def _version(name: str) -> str:
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:16]


@blueprint.get("/viewer")
def viewer() -> Response | str:
    manifest = request.args.get("manifest")
    if manifest is None or not manifest.strip():
        return _plain("missing query parameter: manifest (the URL of a IIIF Presentation manifest)", 400)
    if not acceptable_manifest_url(manifest):
        return _plain("manifest must be an absolute http(s) URL, a root-relative path or iiif/manifests/{id}", 400)
    if local_manifest(manifest):
        base = base_url(request.environ, current_app.config["IIIF_SETTINGS"].server.public_base_url)
        manifest = f"{base}/{manifest}"
    script = url_for("viewer.static_file", filename=MIRADOR, v=_version(MIRADOR))
    return render_template_string(_PAGE, manifest=manifest, script=script)


@blueprint.get("/viewer/static/<path:filename>")
def static_file(filename: str) -> Response:
    """The vendored viewer files; ``.js`` always as ``text/javascript``, cached for a year."""
    mimetype = "text/javascript" if filename.endswith(".js") else None
    response = send_from_directory(STATIC, filename, mimetype=mimetype, max_age=STATIC_MAX_AGE)
    response.cache_control.immutable = True
    return response
