"""The shared HTTP helpers: JSON-LD negotiation (Image 3.0 §5.1, 2.1 §5, Presentation 3.0 §6),
weak If-None-Match (RFC 9110 §13.1.2) and the public base URL."""

from __future__ import annotations

import pytest

from iiif_server import http
from iiif_server.errors import InvalidRequest
from iiif_server.http import base_url, is_fresh, json_media_type, valid_host

IMAGE3 = "http://iiif.io/api/image/3/context.json"
LD = f'application/ld+json;profile="{IMAGE3}"'


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (f'application/ld+json;profile="{IMAGE3}"', LD),  # what IIIF clients send
        (f'application/ld+json; profile="{IMAGE3}"', LD),
        ('application/ld+json;profile="http://www.w3.org/ns/json-ld#compacted"', LD),
        ("application/ld+json", LD),
        ("APPLICATION/LD+JSON", LD),
        ("application/ld+json, application/json;q=0.9", LD),
        ("application/json;q=0.5, application/ld+json", LD),
        ("application/*;q=0.2, application/ld+json;q=0.3", LD),
        ("application/json", "application/json"),
        ("application/ld+json;q=0.5, application/json", "application/json"),
        ("application/ld+json, application/json", "application/json"),  # a tie: plain JSON
        ("*/*", "application/json"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/json"),
        ("image/png", "application/json"),
        ("application/ld+json;q=0", "application/json"),
        (";;,,garbage", "application/json"),
    ],
)
def test_json_media_type_with_an_accept_header(accept: str, expected: str) -> None:
    assert json_media_type(accept, IMAGE3, ld_by_default=True) == expected
    assert json_media_type(accept, IMAGE3, ld_by_default=False) == expected


@pytest.mark.parametrize("accept", [None, "", "  "])
def test_json_media_type_without_one_follows_the_version(accept: str | None) -> None:
    assert json_media_type(accept, IMAGE3, ld_by_default=True) == LD  # 3.0: JSON-LD "should"
    assert json_media_type(accept, IMAGE3, ld_by_default=False) == "application/json"  # 2.1: JSON "must"


@pytest.mark.parametrize(
    ("if_none_match", "fresh"),
    [
        ('"abc"', True),
        ('W/"abc"', True),  # a compressing proxy weakened our tag
        ('"x", W/"abc"', True),
        ("*", True),
        ('"abcd"', False),
        ('W/"x"', False),
    ],
)
def test_is_fresh_compares_if_none_match_weakly(if_none_match: str, fresh: bool) -> None:
    assert is_fresh({"HTTP_IF_NONE_MATCH": if_none_match}, "abc", mtime=0.0) is fresh


def test_is_fresh_if_modified_since_only_without_if_none_match() -> None:
    since = "Wed, 01 Jan 2025 00:00:00 GMT"
    assert is_fresh({"HTTP_IF_MODIFIED_SINCE": since}, "abc", mtime=1735689600.0)
    assert not is_fresh({"HTTP_IF_MODIFIED_SINCE": since}, "abc", mtime=1735689601.0)
    assert not is_fresh({"HTTP_IF_MODIFIED_SINCE": since, "HTTP_IF_NONE_MATCH": 'W/"x"'}, "abc", mtime=0.0)
    assert not is_fresh({"HTTP_IF_MODIFIED_SINCE": since}, "abc")  # no date to compare: not fresh


@pytest.mark.parametrize("host", ["example.org", "example.org:8080", "127.0.0.1:8182", "[::1]:8182", "xn--bo-tng.vn"])
def test_valid_hosts(host: str) -> None:
    assert valid_host(host)


@pytest.mark.parametrize(
    "host", ["", "evil.example/x", "a b", "a@b", 'x"y', "x:port", "x:123456", "[::1", "x\r\ny", "ex\\ample", "a?b"]
)
def test_invalid_hosts(host: str) -> None:
    assert not valid_host(host)


def test_base_url_quotes_the_prefix_and_refuses_a_bad_host() -> None:
    environ = {
        "wsgi.url_scheme": "https",
        "HTTP_HOST": "iiif.museum.vn",
        "SCRIPT_NAME": "/ảnh".encode().decode("latin-1"),
    }
    assert base_url(environ) == "https://iiif.museum.vn/%E1%BA%A3nh"
    assert base_url({**environ, "HTTP_HOST": "evil/x"}, configured="https://configured.example") == (
        "https://configured.example"
    )
    with pytest.raises(InvalidRequest, match="Host"):
        base_url({**environ, "HTTP_HOST": "evil/x"})


def test_closing_error_is_the_one_line_error_with_cors_and_close() -> None:
    raw = http.closing_error(431, "more than 100 header fields\nsecond line dropped")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert lines[0] == "HTTP/1.1 431 Request Header Fields Too Large"
    assert body == b"more than 100 header fields\n" and headers["Content-Length"] == str(len(body))
    assert headers["Content-Type"] == "text/plain; charset=utf-8" and headers["Connection"] == "close"
    assert all(headers[name] == value for name, value in http.EVERY_RESPONSE)
    assert headers["Date"].endswith(" GMT")
