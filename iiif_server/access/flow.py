"""The IIIF authorization services' routes: access token (Auth 2.0 and 1.0), kiosk, logout.

- **Token** (``AUTH2_TOKEN``, ``AUTH1_TOKEN``): a page in the viewer's hidden frame that posts the
  token message to the ``origin`` the viewer named, exactly, and only if that origin is this server's
  own or one of ``[access] token_origins`` (any other gets ``invalidOrigin``, and no token is made).
  Auth 1.0 without ``messageId`` answers the message as JSON (1.0 §2.2.3, non-browser clients).
  The authorizing aspect, in order: the session cookie (a login or a kiosk), a trusted proxy's
  ``external_header`` naming an active account, the client's address in ``external_networks``.
- **Kiosk** (``AUTH2_ACCESS_KIOSK``): a client in ``kiosk_networks`` gets an ambient session
  (``kiosk@<address>``, ``kiosk_levels``) in the session cookie and a page that closes its tab;
  any other gets 403.
- **Logout** (``AUTH2_LOGOUT``, ``AUTH1_LOGOUT``): a GET (clients open it in a tab) ends the session
  in the database, every token issued to it, and the cookie.

The ``active`` service is the login page itself (``login.py``).
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

from flask import Blueprint, current_app, request
from werkzeug.wrappers import Response

from ..forwarded import trusted
from ..http import allowed_origin
from .ambient import Ambient, networks_of
from .endpoints import AUTH1_LOGOUT, AUTH1_TOKEN, AUTH2_ACCESS_KIOSK, AUTH2_LOGOUT, AUTH2_TOKEN
from .login import COOKIE, end_session, session_cookie
from .messages import (
    CLOSE_SCRIPT,
    error_v1,
    error_v2,
    origin_of,
    page,
    page_headers,
    post_message_script,
    token_v1,
    token_v2,
)
from .sessions import KIOSK, Sessions
from .tokens import Issued, Tokens

blueprint = Blueprint("auth_flow", __name__)
log = logging.getLogger("iiif_server")

MAX_MESSAGE_ID = 256

TOKEN_PAGE = {
    "vi": ("Dịch vụ mã truy cập", "Trang này gửi mã truy cập cho trình xem ảnh."),
    "en": ("Access token service", "This page sends an access token to the image viewer."),
}
KIOSK_OPENED = {
    "vi": ("Máy xem tại bảo tàng", "Máy này đã được mở quyền xem ảnh. Tab này sẽ tự đóng."),
    "en": ("Gallery terminal", "This terminal may now see the images. This tab closes itself."),
}
KIOSK_REFUSED = {
    "vi": ("Không phải máy xem tại bảo tàng", "Dịch vụ này chỉ dành cho các máy xem đặt tại bảo tàng."),
    "en": ("Not a gallery terminal", "This service is only for the terminals in the museum's galleries."),
}
LOGGED_OUT = {
    "vi": ("Đã đăng xuất", "Bạn đã đăng xuất. Trình xem ảnh không còn quyền xem ảnh hạn chế."),
    "en": ("Logged out", "You are logged out. The image viewer can no longer see restricted images."),
}


def _html(text: str, status: int = 200, nonce: str = "", frame_ancestors: str = "'none'") -> Response:
    response = Response(text, status=status, mimetype="text/html")
    response.headers.update(page_headers(nonce, frame_ancestors))
    return response


def _token_origins() -> list[str]:
    """``[access] token_origins``, each as ``origin_of`` reads it (so nothing else reaches the CSP header)."""
    configured = current_app.config["IIIF_SETTINGS"].access.token_origins
    return [origin for origin in map(origin_of, configured) if origin is not None]


def _allowed(origin: str) -> bool:
    """May ``origin`` receive a token? This site's own and ``token_origins`` (``http.allowed_origin``)."""
    settings = current_app.config["IIIF_SETTINGS"]
    return allowed_origin(request.environ, settings.server.public_base_url, _token_origins(), origin)


def _frame_ancestors() -> str:
    return " ".join(["'self'", *_token_origins()])


def _issue() -> Issued | str:
    """A token for the request's authorizing aspect, or the 2.0 error profile saying why not."""
    sessions: Sessions = current_app.extensions["iiif_sessions"]
    tokens: Tokens = current_app.extensions["iiif_tokens"]
    ambient: Ambient = current_app.extensions["iiif_ambient"]
    cookie = request.cookies.get(COOKIE)
    session = sessions.lookup(cookie)
    if cookie and session is not None:
        return tokens.for_session(cookie, session)
    name = ambient.header_account(request.environ)
    if name is not None and ambient.account_grant(name) is not None:
        return tokens.for_account(name)
    grant = ambient.network_grant(request.environ)
    if grant is not None:
        return tokens.for_grant(grant)
    return "expiredAspect" if cookie else "missingAspect"


def _token(version: int) -> Response:
    if request.method == "HEAD":  # a token is minted only for a client that will read it
        return _html("", frame_ancestors=_frame_ancestors())
    message_id = request.args.get("messageId")
    requested = request.args.get("origin")
    if version == 1 and message_id is None:  # 1.0 §2.2.3: a non-browser client, JSON
        issued = _issue()
        if isinstance(issued, str):
            error, status = error_v1(issued, None)
            return _json(error, status)
        return _json(token_v1(issued, None), 200)
    origin = origin_of(requested)
    if message_id is None or len(message_id) > MAX_MESSAGE_ID or requested is None or origin is None:
        outcome: Issued | str = "invalidRequest"
    elif not _allowed(origin):
        outcome = "invalidOrigin"
    else:
        outcome = _issue()
    message_id = (message_id or "")[:MAX_MESSAGE_ID]
    if isinstance(outcome, str):
        message = error_v2(outcome, message_id) if version == 2 else error_v1(outcome, message_id)[0]
    else:
        message = token_v2(outcome, message_id) if version == 2 else token_v1(outcome, message_id)
    nonce = secrets.token_urlsafe(16)
    # a value that is no origin cannot be a postMessage target: the page then posts nothing
    script = post_message_script(message, requested) if requested is not None and origin is not None else ""
    return _html(page(TOKEN_PAGE, script, nonce), nonce=nonce if script else "", frame_ancestors=_frame_ancestors())


def _json(message: dict[str, Any], status: int) -> Response:
    response = Response(json.dumps(message), status=status, mimetype="application/json")
    response.headers.update({"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
    return response


@blueprint.get(AUTH2_TOKEN)
def token2() -> Response:
    return _token(2)


@blueprint.get(AUTH1_TOKEN)
def token1() -> Response:
    return _token(1)


@blueprint.get(AUTH2_ACCESS_KIOSK)
def kiosk() -> Response:
    """A gallery terminal's session, without a login; refused (403) anywhere else."""
    access = current_app.config["IIIF_SETTINGS"].access
    address = request.remote_addr  # as the forwarded rules settled it: never a raw X-Forwarded-For
    if not trusted(address, networks_of(access.kiosk_networks)):
        return _html(page(KIOSK_REFUSED), 403)
    sessions: Sessions = current_app.extensions["iiif_sessions"]
    end_session(request.cookies.get(COOKIE))  # a session this browser had before is replaced
    token = sessions.create_ambient(f"{KIOSK}{address}", access.kiosk_levels)
    log.info("kiosk: session opened for %s", address)
    nonce = secrets.token_urlsafe(16)
    response = _html(page(KIOSK_OPENED, CLOSE_SCRIPT, nonce), nonce=nonce)
    session_cookie(response, token, int(sessions.lifetime))
    return response


@blueprint.get(AUTH2_LOGOUT)
@blueprint.get(AUTH1_LOGOUT)
def logout() -> Response:
    """Ends the session and every token issued to it, in every worker at once; clears the cookie."""
    end_session(request.cookies.get(COOKIE))
    response = _html(page(LOGGED_OUT))
    session_cookie(response, "", 0)
    return response
