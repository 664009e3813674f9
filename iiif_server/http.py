"""HTTP details shared by the Flask app and the plain-WSGI image endpoint, so they cannot drift:
CORS headers (Image API 3.0 §6.2: on every response, errors included) and one-line error bodies."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from werkzeug.http import parse_accept_header, parse_date, parse_etags
from werkzeug.wsgi import get_host

CORS = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Expose-Headers", "Link, ETag, Last-Modified"),
]


def preflight_headers(requested_headers: str | None, max_age: int) -> list[tuple[str, str]]:
    """The answer to a CORS preflight: any origin, read-only methods, the headers asked for."""
    return [
        ("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS"),
        ("Access-Control-Allow-Headers", requested_headers or "*"),
        ("Access-Control-Max-Age", str(max_age)),
    ]


def error_body(message: str) -> tuple[bytes, list[tuple[str, str]]]:
    """One line of plain text, never cached, never a traceback."""
    body = (message.splitlines()[0] if message else "error").encode() + b"\n"
    return body, [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]


def base_url(environ: dict[str, Any], configured: str = "") -> str:
    """Public scheme://host[/prefix]: configured, else as the (proxied) request says."""
    if configured:
        return configured
    script = quote(environ.get("SCRIPT_NAME", "").encode("latin-1"), safe="/")
    return f"{environ.get('wsgi.url_scheme', 'http')}://{get_host(environ)}{script.rstrip('/')}"


def json_media_type(accept: str | None, context: str) -> str:
    """JSON-LD with the spec's profile when the client prefers it, else plain JSON (Image 3.0 §5, Prezi 3.0 §6)."""
    parsed = parse_accept_header(accept)
    if parsed.quality("application/ld+json") > parsed.quality("application/json"):
        return f'application/ld+json;profile="{context}"'
    return "application/json"


def is_fresh(environ: dict[str, Any], etag: str, mtime: float | None = None) -> bool:
    """Is the client's copy current? (RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since)."""
    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match:
        tags = parse_etags(if_none_match)
        return tags.star_tag or tags.contains(etag)
    if mtime is None:
        return False
    if_modified_since = parse_date(environ.get("HTTP_IF_MODIFIED_SINCE"))
    return if_modified_since is not None and int(mtime) <= if_modified_since.timestamp()
