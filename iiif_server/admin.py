"""Admin endpoint: purge cached derivatives of one image or of all, behind a bearer token.

Off (404) unless ``[admin] token`` is set, so a default install exposes nothing.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, abort, current_app, jsonify, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized
from werkzeug.wrappers import Response

from .cache.build import Caches

blueprint = Blueprint("admin", __name__)
REALM = "iiif_server admin"


def _authorise() -> None:
    token: str = current_app.config["IIIF_SETTINGS"].admin.token
    if not token:
        abort(404)
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        # RFC 6750 §3: say which scheme; a token was sent and is wrong -> invalid_token
        challenge = WWWAuthenticate("Bearer", {"realm": REALM})
        if given:
            challenge["error"] = "invalid_token"
        raise Unauthorized("a valid bearer token is required", www_authenticate=challenge)


@blueprint.post("/admin/cache/purge")
@blueprint.post("/admin/cache/purge/<path:identifier>")
def purge(identifier: str | None = None) -> Response:
    """Drop derivatives, info.json and metadata from every shared tier and, via the purge epoch,
    from every worker's memory tier within a second."""
    _authorise()
    caches: Caches = current_app.extensions["iiif_caches"]
    count = caches.tiered.purge(identifier)
    return jsonify({"purged": count, "identifier": identifier})
