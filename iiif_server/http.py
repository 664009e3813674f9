"""HTTP details shared by the Flask app and the plain-WSGI image endpoint, so they cannot drift:
CORS headers (Image API 3.0 §6.2: on every response, errors included) and one-line error bodies."""

from __future__ import annotations

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
