"""The access token messages (Auth 2.0 §4.4-4.5, Auth 1.0 §2.2.2-2.2.6) and the small HTML pages of the
authorization services: pure, strings and dicts in, strings and dicts out.

Values a client chose (``messageId``, ``origin``) reach a page only JSON-encoded with ``<``, ``>``,
``&`` and U+2028/2029 escaped (``script_json``): ``</script>`` or ``<!--`` cannot end or bend the
script, whatever they hold. Every page's script runs under a per-answer CSP nonce and nothing
else may run; the token page may be framed only by the origins allowed to receive tokens.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import http
from ..http import valid_host
from .endpoints import AUTH2_CONTEXT

if TYPE_CHECKING:
    from .tokens import Issued

Text = dict[str, list[str]]

#: Auth 2.0 error profile -> Auth 1.0 error type and the HTTP status of its JSON form (1.0 §2.2.6).
V1_ERRORS = {
    "invalidRequest": ("invalidRequest", 400),
    "invalidOrigin": ("invalidOrigin", 403),
    "missingAspect": ("missingCredentials", 401),
    "expiredAspect": ("invalidCredentials", 401),
    "invalidAspect": ("invalidCredentials", 401),
    "unavailable": ("unavailable", 503),
}

ERROR_TEXT: dict[str, tuple[Text, Text]] = {
    "invalidRequest": (
        {"vi": ["Yêu cầu không hợp lệ"], "en": ["Invalid request"]},
        {"vi": ["Thiếu tham số messageId hoặc origin."], "en": ["The messageId or origin parameter is missing."]},
    ),
    "invalidOrigin": (
        {"vi": ["Trang này không được nhận quyền truy cập"], "en": ["This site may not receive access"]},
        {
            "vi": ["Máy chủ chỉ cấp mã truy cập cho các trang web được bảo tàng cho phép."],
            "en": ["The server gives access tokens only to the websites the museum allows."],
        },
    ),
    "missingAspect": (
        {"vi": ["Bạn chưa đăng nhập"], "en": ["You are not logged in"]},
        {
            "vi": ["Hãy đăng nhập để xem ảnh độ phân giải đầy đủ."],
            "en": ["Please log in to see the full-resolution image."],
        },
    ),
    "expiredAspect": (
        {"vi": ["Phiên đăng nhập đã kết thúc"], "en": ["Your session has ended"]},
        {"vi": ["Hãy đăng nhập lại."], "en": ["Please log in again."]},
    ),
}


def origin_of(value: str | None) -> str | None:
    """The origin a client named, as ``scheme://host[:port]`` in lower case for comparing; None if
    it is not one (a path beyond "/", a query, user info, another scheme). Auth 1.0's examples end in
    "/": accepted, as browsers' ``postMessage`` reads it as the same origin."""
    if not value or len(value) > 2048 or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not valid_host(parts.netloc):  # no "@", ";", quotes...
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or value.endswith(("?", "#")):
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def token_v2(issued: Issued, message_id: str) -> dict[str, Any]:
    return {
        "@context": AUTH2_CONTEXT,
        "type": "AuthAccessToken2",
        "accessToken": issued.token,
        "expiresIn": issued.expires_in,
        "messageId": message_id,
    }


def error_v2(profile: str, message_id: str) -> dict[str, Any]:
    message: dict[str, Any] = {"@context": AUTH2_CONTEXT, "type": "AuthAccessTokenError2", "profile": profile}
    if profile in ERROR_TEXT:
        message["heading"], message["note"] = ERROR_TEXT[profile]
    message["messageId"] = message_id
    return message


def token_v1(issued: Issued, message_id: str | None) -> dict[str, Any]:
    message: dict[str, Any] = {"accessToken": issued.token, "expiresIn": issued.expires_in}
    return message if message_id is None else {**message, "messageId": message_id}


def error_v1(profile: str, message_id: str | None) -> tuple[dict[str, Any], int]:
    """The 1.0 error object for a 2.0 profile, and the status its JSON form is sent with."""
    error, status = V1_ERRORS[profile]
    heading, note = ERROR_TEXT.get(profile, ({"en": [error]}, {"en": [""]}))
    message: dict[str, Any] = {"error": error, "description": " ".join(heading["en"] + note["en"]).strip()}
    return (message if message_id is None else {**message, "messageId": message_id}), status


_SCRIPT_ESCAPES = {ord(c): f"\\u{ord(c):04x}" for c in "<>&\u2028\u2029"}


def script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: no ``<``, ``>``, ``&`` or line separators."""
    text = json.dumps(value, ensure_ascii=False)
    return text.translate(_SCRIPT_ESCAPES)


def post_message_script(message: dict[str, Any], target_origin: str) -> str:
    """``window.parent.postMessage(message, targetOrigin)``: 2.0 §4.3, 1.0 §2.2.4; never ``"*"``."""
    return f"window.parent.postMessage({script_json(message)}, {script_json(target_origin)});"


CLOSE_SCRIPT = "window.close();"  # 2.0 §3: the access service's tab SHOULD try to close itself

_PAGE = """<!doctype html>
<html lang="vi"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:30rem;margin:3rem auto;padding:0 1rem}}</style></head>
<body><main>{body}</main>{script}</body></html>
"""


def page(texts: dict[str, tuple[str, str]], script: str = "", nonce: str = "") -> str:
    """A page in Vietnamese then English: ``texts`` maps a language to its (heading, paragraph)."""
    body = "".join(
        f'<section lang="{lang}"><h1>{html.escape(heading)}</h1><p>{html.escape(text)}</p></section>'
        for lang, (heading, text) in texts.items()
    )
    title = " · ".join(html.escape(heading) for heading, _ in texts.values())
    tag = f'<script nonce="{nonce}">{script}</script>' if script else ""
    return _PAGE.format(title=title, body=body, script=tag)


#: What an /auth/ page may load: nothing but its inline styles (and, with a nonce, its one script).
POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'"


def page_headers(
    nonce: str = "", frame_ancestors: str = "'none'", form_action: str = "'none'", referrer: str = "no-referrer"
) -> dict[str, str]:
    """Never cached (it may hold a token or say who is logged in); only its own script runs; framed
    by ``frame_ancestors`` alone (the token page: the origins that may receive tokens; else none,
    whatever ``[site] frame_ancestors`` allows the embeds). Built by ``http.page_headers``, the one
    policy of the site's HTML pages; the login form posts to ``'self'`` (``form_action``)."""
    policy = f"{POLICY}; form-action {form_action}"
    if nonce:
        policy += f"; script-src 'nonce-{nonce}'"
    return http.page_headers(policy, (frame_ancestors,), cache="no-store", referrer=referrer)
