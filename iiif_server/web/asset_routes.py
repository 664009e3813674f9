"""``/assets/<fingerprinted name>``: the site's static files, gzip when accepted, cached for a year."""

from __future__ import annotations

from flask import Blueprint, current_app, request
from werkzeug.wrappers import Response

from ..errors import NotFound
from .assets import IMMUTABLE, Assets, accepts_gzip

blueprint = Blueprint("assets", __name__)


def assets() -> Assets:
    found: Assets = current_app.extensions["iiif_assets"]
    return found


def asset_url(name: str) -> str:
    """The fingerprinted URL of a static file, under the prefix the site is mounted at."""
    return request.script_root + assets().url(name)


@blueprint.get("/assets/<path:fingerprinted>")
def asset(fingerprinted: str) -> Response:
    found = assets().by_fingerprint(fingerprinted)
    if found is None:
        raise NotFound(f"no asset {fingerprinted}")
    zipped = found.gzipped is not None and accepts_gzip(request.headers.get("Accept-Encoding"))
    body = found.gzipped if zipped and found.gzipped is not None else found.body
    response = Response(body, mimetype=found.media_type)
    response.headers["Cache-Control"] = IMMUTABLE
    response.set_etag(found.digest + ("-gz" if zipped else ""))
    if found.gzipped is not None:
        response.headers["Vary"] = "Accept-Encoding"
    if zipped:
        response.headers["Content-Encoding"] = "gzip"
    return response.make_conditional(request)
