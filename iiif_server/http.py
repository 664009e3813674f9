"""The HTTP edge: what the plain-WSGI image endpoint, Flask's error handlers and the presentation
routes share, so they cannot drift: the error -> status table and status lines, one-line error
bodies, CORS headers (Image API 3.0 §6.2: on every response, errors included), conditional GET
(validators, 304), the public base URL and JSON-LD negotiation."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Collection
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

from werkzeug.http import HTTP_STATUS_CODES, http_date, parse_accept_header, parse_date, parse_etags
from werkzeug.wsgi import get_host

from .errors import (
    CANCEL,
    AccessDenied,
    AuthorizationRequired,
    ClientGone,
    IIIFError,
    ImageDecodeError,
    InvalidRequest,
    NotFound,
    Overloaded,
)

Headers = list[tuple[str, str]]

#: Image API 3.0 §7.3. Looked up along the error's MRO, most specific first.
STATUS: dict[type[IIIFError], int] = {
    InvalidRequest: 400,
    AccessDenied: 403,
    AuthorizationRequired: 401,
    NotFound: 404,
    ImageDecodeError: 422,
    Overloaded: 503,
    ClientGone: 499,  # nginx's "client closed request": only the access log and metrics see it
}
#: An answer that depends on who asks (a degraded view now, an authorised one later): kept by the
#: client's own cache only, never by a shared one, and never reused for other credentials, nor for
#: another page (its CORS headers name the page's origin: ``credentialed_cors``).
PRIVATE_CACHE_CONTROL = "private, max-age=3600"
VARY_CREDENTIALS = "Cookie, Authorization, Origin"
VARY_ORIGIN = ("Vary", "Origin")
#: An answer no cache may keep (errors, a probe's result: one client's credentials at one moment).
NO_STORE = ("Cache-Control", "no-store")

#: Reason phrases: RFC 9110's (werkzeug's list, with 422's current name).
REASONS = {**HTTP_STATUS_CODES, 422: "Unprocessable Content", 499: "Client Closed Request"}
_STATUS_LINES = {status: f"{status} {reason}" for status, reason in REASONS.items()}

#: RFC 3986 host (a reg-name of unreserved characters, or an IP literal) with an optional port.
_HOST = re.compile(r"(?:[A-Za-z0-9._~-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
JSON_LD = "application/ld+json"
JSON = "application/json"

CORS = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Expose-Headers", "Link, ETag, Last-Modified"),
]
#: Browsers must not guess another type than the one sent (an error body echoes the identifier).
NOSNIFF = ("X-Content-Type-Options", "nosniff")
#: On every response of the site, errors included: CORS (Image API 3.0 §6.2) and ``NOSNIFF``.
EVERY_RESPONSE = [*CORS, NOSNIFF]


def own_origins(environ: dict[str, Any], configured: str = "") -> set[str]:
    """This site's origins: as the request reached us, and as ``[server] public_base_url`` names it."""
    urls = {base_url(environ), base_url(environ, configured)}
    return {f"{parts.scheme}://{parts.netloc}" for parts in map(urlsplit, urls)}


def trusted_origin(environ: dict[str, Any], configured: str, listed: Collection[str]) -> str | None:
    """The request's ``Origin`` if it is this site's own or one of ``listed`` (``[access]
    token_origins``, lower case), else None: the one place that decides which web pages may act
    with a viewer's credentials. Origins compare case-insensitively (a Host may be spelt in capitals)."""
    origin = environ.get("HTTP_ORIGIN")
    return origin if origin and allowed_origin(environ, configured, listed, origin) else None


def allowed_origin(environ: dict[str, Any], configured: str, listed: Collection[str], origin: str) -> bool:
    """Is ``origin`` this site's own or one of ``listed`` (lower case)? For the ``Origin`` header
    (``trusted_origin``) and the token services' ``origin`` parameter alike."""
    wanted = origin.lower()
    if wanted in listed:
        return True
    try:
        own = own_origins(environ, configured)
    except InvalidRequest:  # an invalid Host: no own origin to match
        return False
    return wanted in {o.lower() for o in own}


def credentialed_cors(environ: dict[str, Any], configured: str, listed: Collection[str]) -> Headers:
    """``EVERY_RESPONSE`` for an answer that depends on who asks (a non-public image, the probe).

    A page that sends the viewer's cookie (``fetch(url, {credentials: "include"})``, OpenSeadragon's
    ``ajaxWithCredentials``) may read an answer only if it names the page's exact origin and says
    ``Access-Control-Allow-Credentials: true``; ``*`` is refused (Fetch, "CORS protocol and
    credentials"). So a trusted origin (``trusted_origin``) gets both; any other keeps ``*``, and its
    credentialed reads fail in the browser, as they must. The answer must also vary on ``Origin``.
    """
    origin = trusted_origin(environ, configured, listed)
    if origin is None:
        return EVERY_RESPONSE
    return [
        ("Access-Control-Allow-Origin", origin),
        ("Access-Control-Allow-Credentials", "true"),
        *CORS[1:],
        NOSNIFF,
    ]


def status_for(error: IIIFError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def status_line(status: int) -> str:
    """``"404 Not Found"``: the same words from the image endpoint and from Flask."""
    return _STATUS_LINES.get(status) or f"{status} "


#: RFC 9110 §15.5.2: a 401 MUST carry a challenge. RFC 6750 §3: the Bearer scheme, as the IIIF
#: Authorization Flow's access tokens are sent; a fixed realm (never the request's Host), and no
#: ``error`` attribute, as the request had no token or one that grants nothing here.
CHALLENGE = ("WWW-Authenticate", 'Bearer realm="IIIF"')


def error_headers(error: IIIFError) -> Headers:
    """Headers an error adds to its status: when to come back after a 503 (RFC 9110 §10.2.3), the
    challenge of a 401 (``CHALLENGE``)."""
    if isinstance(error, Overloaded):
        return [("Retry-After", str(error.retry_after))]
    if isinstance(error, AuthorizationRequired):
        return [CHALLENGE]
    return []


def preflight_headers(requested_headers: str | None, max_age: int) -> Headers:
    """The answer to a CORS preflight: any origin, read-only methods, the headers asked for."""
    return [
        ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS"),
        ("Access-Control-Allow-Headers", requested_headers or "*"),
        ("Access-Control-Max-Age", str(max_age)),
    ]


def error_body(message: str) -> tuple[bytes, Headers]:
    """One line of plain text, never cached, never a traceback."""
    body = (message.splitlines()[0] if message else "error").encode() + b"\n"
    return body, [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        NO_STORE,
    ]


def closing_error(status: int, message: str) -> bytes:
    """A whole response for an error the server meets before the site sees a request (an invalid
    head, 408, 414, 431, too many connections), ending the connection: the same one line, CORS and
    nosniff as every other error, with ``Date`` and ``Connection: close``."""
    body, headers = error_body(message)
    fields = [*headers, *EVERY_RESPONSE, ("Date", _http_date(int(time.time()))), ("Connection", "close")]
    head = f"HTTP/1.1 {status_line(status)}\r\n" + "".join(f"{name}: {value}\r\n" for name, value in fields)
    return head.encode("latin-1") + b"\r\n" + body


def valid_host(host: str) -> bool:
    """Could ``host`` be spliced into a URL as its authority? (no spaces, "/", "@", quotes...)"""
    return _HOST.fullmatch(host) is not None


def base_url(environ: dict[str, Any], configured: str = "") -> str:
    """Public scheme://host[/prefix]: configured, else as the request (or a trusted proxy,
    see ``forwarded``) says. An invalid Host is a 400 (RFC 9112 §3.2), never part of an id."""
    if configured:
        return configured
    host = get_host(environ)
    if not valid_host(host):
        raise InvalidRequest("invalid Host header", "host")
    script = quote(environ.get("SCRIPT_NAME", "").encode("latin-1"), safe="/")
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}{script.rstrip('/')}"


def json_media_type(accept: str | None, context: str, ld_by_default: bool) -> str:
    """The media type of a JSON-LD document (info.json, manifest, collection, activity page).

    ``application/ld+json;profile="{context}"`` when the client ranks ``application/ld+json``
    (with any parameters, e.g. the profile IIIF clients send) above ``application/json``;
    plain JSON when it ranks it lower or equal (``*/*``: browsers show JSON, not always JSON-LD).
    Without an Accept header: JSON-LD for the 3.0 APIs (Image 3.0 §5.1, Presentation 3.0 §6:
    "should"), plain JSON for 2.1 ("must", Image 2.1 §5). Responses carry ``Vary: Accept``.
    """
    if accept is None or not accept.strip():
        ld = ld_by_default
    else:
        ranges = [(value.split(";", 1)[0].strip().lower(), q) for value, q in parse_accept_header(accept)]
        ld = _quality(ranges, JSON_LD) > _quality(ranges, JSON)
    return f'{JSON_LD};profile="{context}"' if ld else JSON


def _quality(ranges: list[tuple[str, float]], media_type: str) -> float:
    """The q of the most specific range matching ``media_type`` (RFC 9110 §12.5.1); 0 if none."""
    specificity_of = {media_type: 2, media_type.split("/", 1)[0] + "/*": 1, "*/*": 0}
    best, quality = -1, 0.0
    for media_range, q in ranges:
        specificity = specificity_of.get(media_range, -1)
        if specificity > best:
            best, quality = specificity, q
    return quality


@lru_cache(maxsize=4096)
def _http_date(seconds: int) -> str:
    return http_date(seconds)


def validators(etag: str, mtime: float | None, cache_control: str) -> Headers:
    """What a 200 and its 304 both carry: the (strong) ETag, Last-Modified when the date is known,
    Cache-Control."""
    if mtime is None:
        return [("ETag", f'"{etag}"'), ("Cache-Control", cache_control)]
    return [("ETag", f'"{etag}"'), ("Last-Modified", _http_date(int(mtime))), ("Cache-Control", cache_control)]


def is_fresh(environ: dict[str, Any], etag: str, mtime: float | None = None) -> bool:
    """Is the client's copy current? (RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since.)

    If-None-Match uses the weak comparison (RFC 9110 §13.1.2): a proxy that compresses the body
    sends our ``"tag"`` back as ``W/"tag"``, and that copy is still current. If-Modified-Since
    counts only for responses with a date (``mtime``), as only those carry Last-Modified.
    """
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match:
        tags = parse_etags(if_none_match)
        return tags.star_tag or tags.contains_weak(etag)
    if mtime is None:
        return False
    if_modified_since = parse_date(environ.get("HTTP_IF_MODIFIED_SINCE"))
    if if_modified_since is None or if_modified_since.timestamp() > time.time():
        return False  # a date in the future is invalid (RFC 9110 §13.1.3): ignore it
    return int(mtime) <= if_modified_since.timestamp()


def cancelled_of(environ: dict[str, Any]) -> Callable[[], bool] | None:
    """Whether the client has gone, as far as the server lets us see it; None if it cannot tell.

    Under the ASGI edge, an event it sets when uvicorn reports ``http.disconnect`` (``CANCEL``).
    Under gthread, a peek at gunicorn's socket: an orderly close reads as b"", a reset raises;
    a pipelined next request is data, not a departure.
    """
    event = environ.get(CANCEL)
    if event is not None:
        return event.is_set  # type: ignore[no-any-return]
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return None

    def closed() -> bool:
        try:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    return closed


def page_headers(
    policy: str,
    frame_ancestors: Collection[str] = ("'none'",),
    cache: str = "",
    referrer: str = "strict-origin-when-cross-origin",
) -> dict[str, str]:
    """Headers of an HTML page: its ``Content-Security-Policy`` (``policy``, then who may frame it) and
    the matching legacy ``X-Frame-Options``; ``Referrer-Policy``; ``Cache-Control`` when given.

    Pages are unframeable unless they say otherwise (clickjacking): the login and access pages keep
    ``'none'`` (``access/messages.page_headers``; the token page: the origins that may receive
    tokens), the catalogue ``'self'``, the embeds and ``/viewer`` ``[site] frame_ancestors``.
    ``referrer``: the access pages send less (``no-referrer``; the login form ``same-origin``, as a
    form posted under ``no-referrer`` carries ``Origin: null``, which its CSRF check refuses).
    """
    ancestors = " ".join(frame_ancestors) or "'none'"
    headers = {
        "Content-Security-Policy": f"{policy}; frame-ancestors {ancestors}",
        "Referrer-Policy": referrer,
    }
    if ancestors == "'none'":
        headers["X-Frame-Options"] = "DENY"
    elif ancestors == "'self'":
        headers["X-Frame-Options"] = "SAMEORIGIN"
    if cache:
        headers["Cache-Control"] = cache
    return headers
