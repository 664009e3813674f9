"""Forwarded headers: parsing (RFC 7239), the hop to read, validation, and whom to trust."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from iiif_server.forwarded import Forwarded, ForwardedHeaders, forwarded_values, parse_forwarded, trusted

LOOPBACK = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")]


def test_parse_forwarded_elements_and_quoting() -> None:
    header = 'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711";HOST="a\\"b"'
    assert parse_forwarded(header) == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"},
        {"for": "[2001:db8:cafe::17]:4711", "host": 'a"b'},
    ]
    assert parse_forwarded("for=unknown") == [{"for": "unknown"}]
    assert parse_forwarded("host=a.example:8080") == [{"host": "a.example:8080"}]  # unquoted, leniently


@pytest.mark.parametrize("header", ['for="unterminated', "=x", "for x", "host=a b", "for=1;" * 2000])
def test_a_malformed_forwarded_header_says_nothing(header: str) -> None:
    assert parse_forwarded(header) == []


def test_the_nearest_hop_is_read_from_the_end() -> None:
    environ = {
        "HTTP_X_FORWARDED_HOST": "evil.example, iiif.museum.vn",
        "HTTP_X_FORWARDED_PROTO": "http, https",
        "HTTP_X_FORWARDED_FOR": "192.0.2.1, 10.0.0.2",
        "HTTP_X_FORWARDED_PREFIX": "/anh",
    }
    assert forwarded_values(environ, 1) == Forwarded("https", "iiif.museum.vn", "/anh", "10.0.0.2")
    assert forwarded_values(environ, 2) == Forwarded("http", "evil.example", None, "192.0.2.1")
    assert forwarded_values(environ, 3) == Forwarded()  # fewer entries than hops: none believed


def test_only_the_kind_of_header_the_proxy_writes_is_read() -> None:
    """A proxy passes on what it does not set: a client's own header of the other kind is never read."""
    environ = {
        "HTTP_FORWARDED": 'for="[2001:db8::1]:4711";proto=HTTPS;host=iiif.museum.vn',
        "HTTP_X_FORWARDED_HOST": "other.example",
        "HTTP_X_FORWARDED_PREFIX": "/anh/",
    }
    assert forwarded_values(environ, 1, rfc7239=True) == Forwarded("https", "iiif.museum.vn", "/anh/", "2001:db8::1")
    assert forwarded_values(environ, 1) == Forwarded(None, "other.example", "/anh/", None)
    # nginx or HAProxy appended X-Forwarded-For; the client sent Forwarded naming a staff address
    spoofed = {"HTTP_FORWARDED": "for=192.0.2.9", "HTTP_X_FORWARDED_FOR": "192.0.2.9, 203.0.113.7"}
    assert forwarded_values(spoofed, 1).client == "203.0.113.7"
    assert forwarded_values({"HTTP_FORWARDED": "for=192.0.2.9"}, 1) == Forwarded()
    # and the other way round: a proxy writing Forwarded, a client's X-Forwarded-For
    spoofed = {"HTTP_X_FORWARDED_FOR": "192.0.2.9", "HTTP_FORWARDED": "for=203.0.113.7"}
    assert forwarded_values(spoofed, 1, rfc7239=True).client == "203.0.113.7"
    assert forwarded_values({"HTTP_X_FORWARDED_FOR": "192.0.2.9"}, 1, rfc7239=True) == Forwarded()


def test_x_forwarded_port_replaces_the_port() -> None:
    environ = {
        "HTTP_HOST": "127.0.0.1:8182",
        "HTTP_X_FORWARDED_HOST": "iiif.museum.vn",
        "HTTP_X_FORWARDED_PORT": "8443",
    }
    assert forwarded_values(environ, 1).host == "iiif.museum.vn:8443"
    assert forwarded_values({**environ, "HTTP_X_FORWARDED_HOST": "[::1]"}, 1).host == "[::1]:8443"
    assert forwarded_values({**environ, "HTTP_X_FORWARDED_PORT": "x"}, 1).host is None


@pytest.mark.parametrize(
    "environ",
    [
        {"HTTP_X_FORWARDED_HOST": "evil.example/x"},
        {"HTTP_X_FORWARDED_HOST": "evil example"},
        {"HTTP_X_FORWARDED_HOST": "user@evil.example"},
        {"HTTP_FORWARDED": 'host="evil.example/x"'},
        {"HTTP_X_FORWARDED_PROTO": "javascript"},
        {"HTTP_X_FORWARDED_PREFIX": "anh"},
        {"HTTP_X_FORWARDED_PREFIX": "//evil.example"},
        {"HTTP_X_FORWARDED_PREFIX": '/a"><script>'},
        {"HTTP_X_FORWARDED_PREFIX": "/a b"},
        {"HTTP_X_FORWARDED_FOR": "_hidden"},
        {"HTTP_FORWARDED": "for=unknown"},
    ],
)
def test_invalid_values_are_dropped(environ: dict[str, str]) -> None:
    assert forwarded_values(environ, 1, rfc7239="HTTP_FORWARDED" in environ) == Forwarded()


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True), ("10.0.0.1", False), ("", False), ("x", False)],
)
def test_trusted_addresses(address: str, expected: bool) -> None:
    assert trusted(address, LOOPBACK) is expected
    assert trusted(address, []) is False


def _seen(trusted_proxies: list[str], environ: dict[str, Any]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.update(env)
        return []

    ForwardedHeaders(app, trusted_proxies, 1)(environ, lambda *a: None)
    return seen


def test_the_middleware_applies_only_a_trusted_proxys_values() -> None:
    environ = {
        "REMOTE_ADDR": "10.1.2.3",
        "wsgi.url_scheme": "http",
        "HTTP_HOST": "127.0.0.1:8182",
        "SCRIPT_NAME": "",
        "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_X_FORWARDED_HOST": "iiif.museum.vn",
        "HTTP_X_FORWARDED_PREFIX": "/%E1%BA%A3nh",
        "HTTP_X_FORWARDED_FOR": "192.0.2.7",
    }
    untrusted = _seen(["127.0.0.1"], dict(environ))
    assert (untrusted["wsgi.url_scheme"], untrusted["HTTP_HOST"], untrusted["SCRIPT_NAME"]) == (
        "http",
        "127.0.0.1:8182",
        "",
    )
    proxied = _seen(["10.0.0.0/8"], dict(environ))
    assert (proxied["wsgi.url_scheme"], proxied["HTTP_HOST"], proxied["REMOTE_ADDR"]) == (
        "https",
        "iiif.museum.vn",
        "192.0.2.7",
    )
    assert proxied["SCRIPT_NAME"] == "/ảnh".encode().decode("latin-1")  # WSGI's latin-1 code points
