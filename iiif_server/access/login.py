"""The login page: ``GET/POST /auth/login`` and ``POST /auth/logout``, in Vietnamese (default) and English.

A plain HTML form, so it works without JavaScript. CSRF: double-submit — a random value in an
HttpOnly, SameSite=Strict cookie under ``/auth`` that the form must carry back — plus a refused
foreign ``Origin``; a cross-site page can neither read the cookie nor log a visitor in as someone
else. Wrong passwords are throttled per account and per client address (``throttle.py``, as the
admin endpoint's tokens): after ``[access] login_max_failures`` of either, 429 + Retry-After, right
password or not. A success clears the account's count, never the address's: one valid account
must not reset a guesser's brake on the others. Failures are logged with name and address, never
the password. ``return`` may only be a path on this site (no open redirect). The page cannot be
framed (clickjacking) and is never cached.

It is also the IIIF ``active`` access service (Auth 2.0 §3.3.1) and the Auth 1.0 login service: opened
by a viewer in a tab with ``?origin=``, once logged in (or if already) it answers a page that says so
and closes its tab (2.0 §3), so the viewer goes on to the token service (``flow.py``).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, current_app, redirect, render_template_string, request
from werkzeug.exceptions import Forbidden
from werkzeug.wrappers import Response

from ..http import own_origins as request_origins
from ..throttle import Throttle, client_key
from .accounts import Accounts
from .endpoints import AUTH1_LOGIN, AUTH2_ACCESS_ACTIVE
from .messages import CLOSE_SCRIPT, origin_of, page, page_headers
from .sessions import Sessions

blueprint = Blueprint("login", __name__)
log = logging.getLogger("iiif_server")

COOKIE = "iiif_session"
CSRF_COOKIE = "iiif_login_csrf"
LANGS = ("vi", "en")
MAX_RETURN = 2048

#: On every answer of the login form: never in a frame (clickjacking), never in a cache (it may say who
#: is logged in); nothing loads but its styles; it posts only to this site. ``same-origin`` referrer:
#: under ``no-referrer`` a browser posts the form with ``Origin: null``, which the CSRF check refuses.
PAGE_HEADERS = page_headers(form_action="'self'", referrer="same-origin")

TEXT = {
    "vi": {
        "title": "Đăng nhập",
        "intro": "Dành cho cán bộ bảo tàng và nhà nghiên cứu được cấp quyền xem hình ảnh hạn chế.",
        "username": "Tên đăng nhập",
        "password": "Mật khẩu",
        "submit": "Đăng nhập",
        "wrong": "Sai tên đăng nhập hoặc mật khẩu, hoặc tài khoản đã hết hạn.",
        "throttled": "Quá nhiều lần đăng nhập sai. Vui lòng thử lại sau {seconds} giây.",
        "signed_in": "Bạn đang đăng nhập với tên {name}.",
        "logout": "Đăng xuất",
        "continue": "Tiếp tục",
        "other": "English",
    },
    "en": {
        "title": "Log in",
        "intro": "For museum staff and accredited researchers who may see restricted images.",
        "username": "Username",
        "password": "Password",
        "submit": "Log in",
        "wrong": "Wrong username or password, or the account has expired.",
        "throttled": "Too many failed logins. Please try again in {seconds} seconds.",
        "signed_in": "You are logged in as {name}.",
        "logout": "Log out",
        "continue": "Continue",
        "other": "Tiếng Việt",
    },
}

#: The answer to a viewer's tab once its user is logged in: (heading, paragraph) per language.
LOGGED_IN = {
    "vi": (
        "Đã đăng nhập",
        "Bạn đã đăng nhập với tên {name}. Tab này sẽ tự đóng; nếu không, hãy đóng nó và quay lại trình xem ảnh.",
    ),
    "en": (
        "Logged in",
        "You are logged in as {name}. This tab closes itself; if it does not, close it and return to the viewer.",
    ),
}

_PAGE = """<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ t.title }} – iiif_server</title>
<style>body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem}
label,input,button{display:block;width:100%;box-sizing:border-box;margin:.3rem 0}input{padding:.4rem}
button{padding:.5rem;margin-top:1rem}.error{color:#a00}nav{text-align:right}</style></head>
<body><nav><a href="{{ other_url }}" hreflang="{{ other_lang }}" lang="{{ other_lang }}">{{ t.other }}</a></nav>
<main><h1>{{ t.title }}</h1>
{% if message %}<p class="error" role="alert">{{ message }}</p>{% endif %}
{% if session %}<p>{{ t.signed_in.format(name=session.account.display_name) }}</p>
<p><a href="{{ return_to }}">{{ t.continue }}</a></p>
<form method="post" action="{{ logout_url }}">
<input type="hidden" name="csrf" value="{{ csrf }}"><input type="hidden" name="lang" value="{{ lang }}">
<button type="submit">{{ t.logout }}</button></form>
{% else %}<p>{{ t.intro }}</p>
<form method="post" action="{{ login_url }}">
<input type="hidden" name="csrf" value="{{ csrf }}"><input type="hidden" name="lang" value="{{ lang }}">
<input type="hidden" name="return" value="{{ return_to }}">
{% if origin %}<input type="hidden" name="origin" value="{{ origin }}">{% endif %}
<label for="username">{{ t.username }}</label>
<input id="username" name="username" autocomplete="username" required maxlength="64" value="{{ username }}">
<label for="password">{{ t.password }}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">{{ t.submit }}</button></form>
{% endif %}</main></body></html>
"""


def safe_return(value: str | None, default: str) -> str:
    """``value`` if it is a path on this site, else ``default``: never ``//host``, ``/\\host``,
    a scheme, or control characters (browsers drop tabs and newlines, turning ``/\\t/host`` into ``//host``)."""
    if not value or len(value) > MAX_RETURN or not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return default
    parts = urlsplit(value)
    return default if parts.scheme or parts.netloc else value


def _lang() -> str:
    lang = request.values.get("lang", "")
    return lang if lang in LANGS else LANGS[0]


def _https() -> bool:
    return request.scheme == "https"  # behind a trusted proxy: the scheme it forwards (forwarded.py)


def _csrf_token() -> str:
    token = request.cookies.get(CSRF_COOKIE, "")
    return token if 20 <= len(token) <= 64 and token.isascii() else secrets.token_urlsafe(32)


def _check_csrf() -> None:
    """The form's token must equal its cookie's, and a browser's Origin, if sent, must be this site."""
    cookie, field = request.cookies.get(CSRF_COOKIE, ""), request.form.get("csrf", "")
    if not cookie or not field or not hmac.compare_digest(cookie.encode(), field.encode()):
        raise Forbidden("missing or wrong CSRF token: reload the login page and try again")
    origin = request.headers.get("Origin")
    if origin is not None and origin not in own_origins():
        raise Forbidden("cross-site form posts are refused")


def _viewer_origin() -> str | None:
    """The ``origin`` a IIIF viewer opened this tab with (2.0 §3.2), if it is one: the page then
    closes the tab once logged in. Only a flag here; the token service decides what it may receive."""
    value = request.values.get("origin")
    return value if origin_of(value) is not None else None


def own_origins() -> set[str]:
    """This site's origins: as the request reached us, and as ``[server] public_base_url`` names it."""
    return request_origins(request.environ, current_app.config["IIIF_SETTINGS"].server.public_base_url)


def _page(status: int = 200, message: str = "", username: str = "", retry_after: int = 0) -> Response:
    lang = _lang()
    root = request.script_root
    return_to = safe_return(request.values.get("return"), root + "/")
    csrf = _csrf_token()
    sessions: Sessions = current_app.extensions["iiif_sessions"]
    session = sessions.lookup(request.cookies.get(COOKIE)) if not message else None
    origin = _viewer_origin()
    if session is not None and origin is not None:
        return _close_tab(session.account.display_name)
    other = LANGS[1 - LANGS.index(lang)]
    query = {
        "lang": other,
        **({"return": return_to} if return_to != root + "/" else {}),
        **({"origin": origin} if origin else {}),
    }
    html = render_template_string(
        _PAGE,
        lang=lang,
        t=TEXT[lang],
        message=message,
        username=username,
        session=session,
        origin=origin,
        csrf=csrf,
        return_to=return_to,
        login_url=f"{root}/auth/login",
        logout_url=f"{root}/auth/logout",
        other_lang=other,
        other_url=f"{root}/auth/login?{urlencode(query)}",
    )
    response = Response(html, status=status, mimetype="text/html")
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    _set_csrf_cookie(response, csrf)
    return response


def _close_tab(name: str) -> Response:
    """Logged in, for a viewer's tab: say so in both languages and close it (Auth 2.0 §3)."""
    nonce = secrets.token_urlsafe(16)
    texts = {lang: (heading, text.format(name=name)) for lang, (heading, text) in LOGGED_IN.items()}
    response = Response(page(texts, CLOSE_SCRIPT, nonce), mimetype="text/html")
    response.headers.update(page_headers(nonce))
    return response


def _set_csrf_cookie(response: Response, token: str) -> None:
    response.set_cookie(
        CSRF_COOKIE, token, path=f"{request.script_root}/auth", httponly=True, secure=_https(), samesite="Strict"
    )


def session_cookie(response: Response, token: str, max_age: int) -> None:
    """HttpOnly always; SameSite=None (the IIIF viewers' cross-site requests) only with Secure, on https."""
    https = _https()
    settings = current_app.config["IIIF_SETTINGS"].access
    response.set_cookie(
        COOKIE,
        token,
        max_age=max_age,
        path=settings.cookie_path,
        httponly=True,
        secure=https,
        samesite="None" if https else "Lax",
    )


def end_session(cookie: str | None) -> None:
    """Logout: the session and every access token issued to it end, in every worker at once."""
    current_app.extensions["iiif_tokens"].end_session(cookie)
    current_app.extensions["iiif_sessions"].end(cookie)


@blueprint.after_request
def _page_headers(response: Response) -> Response:
    for name, value in PAGE_HEADERS.items():  # a page with its own script has its own, stricter CSP
        response.headers.setdefault(name, value)
    return response


@blueprint.get(AUTH2_ACCESS_ACTIVE)
@blueprint.get(AUTH1_LOGIN)
def login_page() -> Response:
    return _page()


@blueprint.post("/auth/login")
def login() -> Response:
    _check_csrf()
    t = TEXT[_lang()]
    username = request.form.get("username", "")[:256]
    password = request.form.get("password", "")
    address = request.remote_addr or "unknown"
    keys = (client_key(address), f"account:{username}")
    throttle: Throttle = current_app.extensions["iiif_login_throttle"]
    wait = max(throttle.blocked_for(key) for key in keys)
    if wait:  # not checked during a block: an answer would tell a guesser when it guessed right
        return _page(429, t["throttled"].format(seconds=wait), username, retry_after=wait)
    accounts: Accounts = current_app.extensions["iiif_accounts"]
    account = accounts.verify(username, password)
    if account is None:
        counts = [throttle.failed(key) for key in keys]
        log.warning(
            "login: failed for account %r from %s (%d from the address, %d for the account, within %g s)",
            username,
            address,
            *counts,
            throttle.period,
        )
        for key, count in zip(keys, counts, strict=True):
            if throttle.max_failures and count == throttle.max_failures:
                log.warning("login: %s blocked for %g s after %d failures", key, throttle.period, count)
        return _page(403, t["wrong"], username)
    throttle.succeeded(keys[1])
    sessions: Sessions = current_app.extensions["iiif_sessions"]
    end_session(request.cookies.get(COOKIE))  # a session this browser had before is replaced, not left live
    token = sessions.create(account.username)
    log.info("login: account %r from %s", account.username, address)
    origin = _viewer_origin()
    if origin is not None:  # a viewer's tab: on to the page that closes it
        back = f"{request.script_root}{AUTH2_ACCESS_ACTIVE}?{urlencode({'origin': origin, 'lang': _lang()})}"
        response = redirect(back, code=303)
    else:
        response = redirect(safe_return(request.form.get("return"), request.script_root + "/"), code=303)
    session_cookie(response, token, int(sessions.lifetime))
    return response


@blueprint.post("/auth/logout")
def logout() -> Response:
    """Ends the session in the database (every worker, at once) and clears the cookie."""
    _check_csrf()
    end_session(request.cookies.get(COOKIE))
    back = f"{request.script_root}/auth/login?{urlencode({'lang': _lang()})}"
    response = redirect(safe_return(request.form.get("return"), back), code=303)
    session_cookie(response, "", 0)  # cleared with the attributes it was set with
    return response
