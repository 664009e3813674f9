"""Forwarded headers, believed only from the reverse proxies named in ``[server] trusted_proxies``.

The public base URL in every id (info.json, manifests, Location, canonical Link) comes from
the request. A proxy says what the client asked for in ``Forwarded`` (RFC 7239: ``proto``,
``host``, ``for``) or ``X-Forwarded-Proto/Host/Port/For``, and the path it mounts us under in
``X-Forwarded-Prefix``. Anyone can send those headers, so they count only when the connection
comes from a trusted address; otherwise a client could rewrite ids, and a shared cache would
keep its answer for everyone. ``proxy_hops`` says how many trusted proxies are chained: each
list is read at that position from its end (the last entry is the nearest proxy's).

Only the kind the proxies write is read (``[server] forwarded_header``): ``Forwarded`` or
``X-Forwarded-*``, never whichever is present. A proxy passes on the headers it does not set, so a
client sending ``Forwarded: for=<a staff network's address>`` through nginx or HAProxy, which append
``X-Forwarded-For``, would otherwise be that address (``[access] external_networks``: full-resolution
restricted images with no login).

Every value is validated before it is used: a bad host, scheme or prefix is ignored, never
spliced into a URL. ``parse_forwarded`` and ``forwarded_values`` are pure; ``ForwardedHeaders``
is the WSGI middleware that applies them to the environ.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from .http import valid_host

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_VALUE = r'"(?:[^"\\]|\\.)*"|[^;,\s"]+'  # quoted-string, or (leniently) any unquoted run
_ITEM = re.compile(rf"\s*(?:({_TOKEN})\s*=\s*({_VALUE}))?\s*([;,]|$)")
_PREFIX = re.compile(r"(?:/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+/?")  # "/anh", "/a/b/"; no "//"
_MAX_HEADER = 8192

#: Environ key, True when the connecting peer is one of ``[server] trusted_proxies``: what it says
#: about the client (forwarded headers, and ``[access] external_header``) may be believed.
PROXIED = "iiif.proxied"


@dataclass(frozen=True)
class Forwarded:
    """What the trusted proxy says the client asked for; ``None`` where it says nothing usable."""

    proto: str | None = None
    host: str | None = None
    prefix: str | None = None
    client: str | None = None


def parse_forwarded(header: str) -> list[dict[str, str]]:
    """RFC 7239 ``Forwarded`` as one dict per element (parameter names lower-cased), first hop first.

    A malformed header gives ``[]``: nothing in it is believed.
    """
    if len(header) > _MAX_HEADER:
        return []
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    pos = 0
    while True:
        match = _ITEM.match(header, pos)
        if match is None:
            return []
        name, value, separator = match.groups()
        if name:
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            current.setdefault(name.lower(), value)
        if separator != ";":
            elements.append(current)
            current = {}
        if not separator:
            return elements
        pos = match.end()


def forwarded_values(environ: dict[str, Any], hops: int, rfc7239: bool = False) -> Forwarded:
    """Read the forwarded values of the ``hops``-th proxy from the end.

    ``rfc7239``: from ``Forwarded`` only, else from ``X-Forwarded-Proto/Host/Port/For`` only; the
    prefix is always ``X-Forwarded-Prefix`` (RFC 7239 has none).
    """
    if rfc7239:
        elements = parse_forwarded(environ.get("HTTP_FORWARDED", ""))
        element = elements[-hops] if 0 < hops <= len(elements) else {}
        proto, host, client = element.get("proto"), element.get("host"), element.get("for")
    else:
        proto = _nth(environ.get("HTTP_X_FORWARDED_PROTO"), hops)
        host = _nth(environ.get("HTTP_X_FORWARDED_HOST"), hops)
        port = _nth(environ.get("HTTP_X_FORWARDED_PORT"), hops)
        if port is not None:
            host = _with_port(host or environ.get("HTTP_HOST", ""), port)
        client = _nth(environ.get("HTTP_X_FORWARDED_FOR"), hops)
    prefix = _nth(environ.get("HTTP_X_FORWARDED_PREFIX"), hops)
    return Forwarded(
        proto=proto.lower() if proto and proto.lower() in ("http", "https") else None,
        host=host if host and valid_host(host) else None,
        prefix=prefix if prefix and _PREFIX.fullmatch(prefix) else None,
        client=_address(client) if client else None,
    )


def _nth(header: str | None, hops: int) -> str | None:
    if not header or len(header) > _MAX_HEADER:
        return None
    values = [part.strip() for part in header.split(",")]
    return values[-hops] if 0 < hops <= len(values) else None


def _with_port(host: str, port: str) -> str | None:
    if not port.isascii() or not port.isdigit():
        return None
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return f"{name}:{port}"


def _address(node: str) -> str | None:
    """An IP address from an X-Forwarded-For entry or a ``for=`` node ("[2001:db8::1]:4711"); else None."""
    if node.startswith("["):
        node = node[1:].split("]", 1)[0]
    elif node.count(":") == 1:
        node = node.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(node))
    except ValueError:
        return None


def trusted(address: str | None, networks: Sequence[Network]) -> bool:
    if not address or not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:  # "::ffff:127.0.0.1" on dual-stack sockets
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


class ForwardedHeaders:
    """WSGI middleware: the environ as the client saw it, when (and only when) a trusted proxy says so."""

    def __init__(self, app: WSGIApp, trusted_proxies: Iterable[str], hops: int, rfc7239: bool = False) -> None:
        self.app = app
        self.networks = [ipaddress.ip_network(entry, strict=False) for entry in trusted_proxies]
        self.hops = hops
        self.rfc7239 = rfc7239

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self.hops and trusted(environ.get("REMOTE_ADDR"), self.networks):
            environ[PROXIED] = True
            apply(environ, forwarded_values(environ, self.hops, self.rfc7239))
        return self.app(environ, start_response)


def apply(environ: dict[str, Any], values: Forwarded) -> None:
    """Rewrite the environ with the values the proxy gave (each already validated)."""
    if values.proto:
        environ["wsgi.url_scheme"] = values.proto
    if values.host:
        environ["HTTP_HOST"] = values.host
    if values.prefix:
        # WSGI strings are latin-1 code points of the decoded bytes; base_url quotes them again
        environ["SCRIPT_NAME"] = unquote_to_bytes(values.prefix.rstrip("/")).decode("latin-1")
    if values.client:
        environ["REMOTE_ADDR"] = values.client
