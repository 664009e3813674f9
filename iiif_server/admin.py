"""Admin endpoint: purge cached derivatives of one image or of all, behind a bearer token.

Off (404) unless ``[admin] token`` is set, so a default install exposes nothing. Wrong tokens are
logged (the client address, never the token), counted (``iiif_admin_auth_failures_total``) and
throttled per address (``throttle.py``): after ``[admin] max_failures`` within ``block_seconds``
the address gets 429 + Retry-After for ``block_seconds``, whatever token it sends. Checking the
token during the block would tell a guesser when it guessed right, and the brake would brake
nothing; the cost is that an admin behind the same address waits out the block (or runs
``iiif-server cache purge`` on the host). The address is the one the app trusts: the connecting
one, or the one a proxy in ``[server] trusted_proxies`` forwards (``forwarded.py``).
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, abort, current_app, jsonify, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import TooManyRequests, Unauthorized
from werkzeug.wrappers import Response

from .cache.build import Caches
from .metrics import ADMIN_THROTTLED, ADMIN_WRONG_TOKEN
from .throttle import Throttle, client_key

blueprint = Blueprint("admin", __name__)
REALM = "iiif_server admin"
log = logging.getLogger("iiif_server")


def _authorise() -> None:
    settings = current_app.config["IIIF_SETTINGS"].admin
    if not settings.token:
        abort(404)
    throttle: Throttle = current_app.extensions["iiif_admin_throttle"]
    address = request.remote_addr or "unknown"
    key = client_key(address)
    wait = throttle.blocked_for(key)
    if wait:
        ADMIN_THROTTLED.inc()  # not logged: the block's start was, and a flood must not flood the log
        raise TooManyRequests(f"too many wrong admin tokens from this address; try again in {wait} s", retry_after=wait)
    given = request.headers.get("Authorization", "")
    if hmac.compare_digest(given.encode(), f"Bearer {settings.token}".encode()):
        throttle.succeeded(key)
        return
    # RFC 6750 §3: say which scheme; a token was sent and is wrong -> invalid_token
    challenge = WWWAuthenticate("Bearer", {"realm": REALM})
    if given:
        challenge["error"] = "invalid_token"
        ADMIN_WRONG_TOKEN.inc()
        failures = throttle.failed(key)
        log.warning("admin: wrong bearer token from %s (%d within %g s)", address, failures, throttle.period)
        if throttle.max_failures and failures == throttle.max_failures:
            log.warning("admin: %s blocked for %g s after %d wrong tokens", key, throttle.period, failures)
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
