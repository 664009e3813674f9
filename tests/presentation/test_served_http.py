"""The real ``iiif-server serve`` (gunicorn) over real HTTP: whose forwarded headers count, JSON-LD
negotiation as IIIF clients do it, revalidation through a compressing proxy, redirects, admin 401."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from iiif_server.check import free_port, running_server

from .conftest import ROWS, SIZES, write_export, write_image

EVIL = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https", "X-Forwarded-Prefix": "/evil"}
FORWARDED_EVIL = {"Forwarded": 'for=192.0.2.1;proto=https;host="evil.example"'}
IMAGE = quote("ponagar/tháp chính.tif", safe="")
INFO3, INFO2 = f"/iiif/3/{IMAGE}/info.json", f"/iiif/2/{IMAGE}/info.json"
TILE = f"/iiif/3/{IMAGE}/0,0,256,256/256,/0/default.jpg"
MANIFEST = "/iiif/manifests/KH-DT-0001"
TOKEN = "s3cret-admin-token"


def fetch(base: str, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, Any, bytes]:
    """One request, redirects not followed; ``Host`` may be overridden through ``headers``."""
    address = urlsplit(base)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
    try:
        headers = headers or {}
        connection.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def fetch_json(base: str, path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    status, _, body = fetch(base, path, headers)
    assert status == 200, body
    document: dict[str, Any] = json.loads(body)
    return document


@pytest.fixture(scope="module")
def collection_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("served")
    for name, (width, height) in SIZES.items():
        write_image(folder / "images" / name, width, height)
    write_export(folder / "export.csv", ROWS)
    return folder


WORKERS = ["gthread", "asgi"]  # [server] worker: every test here runs against both


def serve(folder: Path, state: str, **env: str) -> Any:
    return running_server(
        ["serve", "--images", str(folder / "images"), "--workers", "1"],
        free_port(),
        env={
            "IIIF_SERVER_MANIFESTS_SOURCE": str(folder / "export.csv"),
            "IIIF_SERVER_MANIFESTS_STATE_DIR": str(folder / state),
            "IIIF_SERVER_CACHE_DISK_DIR": str(folder / f"cache-{state}"),
            "IIIF_SERVER_ADMIN_TOKEN": TOKEN,
            **env,
        },
    )


@pytest.fixture(scope="module", params=WORKERS)
def server(collection_dir: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """Default settings: no trusted proxies."""
    with serve(collection_dir, f"state-direct-{request.param}", IIIF_SERVER_SERVER_WORKER=request.param) as base:
        yield base


@pytest.fixture(scope="module", params=WORKERS)
def proxied(collection_dir: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """As behind nginx on the same host: 127.0.0.1 is a trusted proxy."""
    env = {"IIIF_SERVER_SERVER_TRUSTED_PROXIES": "127.0.0.1,::1", "IIIF_SERVER_SERVER_WORKER": request.param}
    with serve(collection_dir, f"state-proxied-{request.param}", **env) as base:
        yield base


def index_links(base: str, headers: dict[str, str] | None = None) -> list[str]:
    status, _, body = fetch(base, "/status", headers)
    assert status == 200
    return re.findall(r'href="([^"]+)"', body.decode())


# -- issue 9.5: forwarded headers ----------------------------------------------------------------


@pytest.mark.parametrize("evil", [EVIL, FORWARDED_EVIL], ids=["x-forwarded", "forwarded"])
def test_a_clients_forwarded_headers_are_ignored(server: str, evil: dict[str, str]) -> None:
    status, headers, _ = fetch(server, f"/iiif/3/{IMAGE}", evil)
    assert status == 303 and headers["Location"] == f"{server}{INFO3}"
    assert fetch_json(server, INFO3, evil)["id"] == f"{server}/iiif/3/{IMAGE}"
    assert fetch_json(server, INFO2, evil)["@id"] == f"{server}/iiif/2/{IMAGE}"
    assert fetch(server, TILE, evil)[1]["Link"].startswith(f"<{server}/iiif/3/{IMAGE}/")
    manifest = fetch_json(server, MANIFEST, evil)
    assert manifest["id"] == f"{server}{MANIFEST}"
    assert "evil" not in json.dumps(manifest)
    links = index_links(server, evil)
    assert f"/iiif/3/{IMAGE}/info.json" in links and "/iiif/collections/top" in links
    assert not any("evil" in link for link in links)


def test_poisoning_sequence_leaves_clean_ids(server: str) -> None:
    """A shared cache keyed on the URL keeps whatever answered first: an evil request's answer
    must be byte for byte the clean one, and the clean one after it must still be clean."""
    for path in (INFO3, INFO2, MANIFEST, "/iiif/collections/top", "/iiif/activity/all-changes"):
        for evil in (EVIL, FORWARDED_EVIL):
            status, _, poisoned = fetch(server, path, {**evil, "Accept": "application/json"})
            assert status == 200 and b"evil" not in poisoned, path
            status, _, clean = fetch(server, path, {"Accept": "application/json"})
            assert status == 200 and clean == poisoned, path
            assert json.loads(clean)["@id" if "/2/" in path else "id"].startswith(server + "/")


def test_an_invalid_host_is_refused(server: str) -> None:
    for host in ("evil.example/x", "a b", 'x"y', "user@evil.example"):
        status, _, body = fetch(server, INFO3, {"Host": host})
        assert status == 400 and b"Host" in body, host


def test_a_trusted_proxys_headers_set_the_ids(proxied: str) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "iiif.museum.vn", "X-Forwarded-Prefix": "/anh"}
    public = "https://iiif.museum.vn/anh"
    status, response, _ = fetch(proxied, f"/iiif/3/{IMAGE}", headers)
    assert status == 303 and response["Location"] == f"{public}{INFO3}"
    assert fetch_json(proxied, INFO3, headers)["id"] == f"{public}/iiif/3/{IMAGE}"
    assert fetch_json(proxied, INFO2, headers)["@id"] == f"{public}/iiif/2/{IMAGE}"
    manifest = fetch_json(proxied, MANIFEST, headers)
    assert manifest["id"] == f"{public}{MANIFEST}"
    service = manifest["items"][0]["items"][0]["items"][0]["body"]["service"][0]["id"]
    assert service == f"{public}/iiif/3/{IMAGE}"
    links = index_links(proxied, headers)
    assert f"/anh/iiif/3/{IMAGE}/info.json" in links
    assert "/anh/iiif/collections/top" in links and "/anh/iiif/activity/all-changes" in links
    assert f"/anh/viewer?manifest=/anh{MANIFEST}" in links
    assert all(link.startswith("/anh/") for link in links)
    # the same proxy without headers: the plain address again (nothing cached from before)
    assert fetch_json(proxied, INFO3)["id"] == f"{proxied}/iiif/3/{IMAGE}"


def test_a_trusted_proxy_may_use_rfc7239_forwarded(collection_dir: Path, proxied: str) -> None:
    headers = {"Forwarded": 'for="[2001:db8::1]:4711";proto=https;host=iiif.museum.vn', "X-Forwarded-Prefix": "/anh"}
    # a proxy writing X-Forwarded-* (the default) passes a client's Forwarded on: it is not read
    assert fetch_json(proxied, INFO3, headers)["id"] == f"{proxied}/anh/iiif/3/{IMAGE}"
    env = {"IIIF_SERVER_SERVER_TRUSTED_PROXIES": "127.0.0.1,::1", "IIIF_SERVER_SERVER_FORWARDED_HEADER": "forwarded"}
    with serve(collection_dir, "state-rfc7239", **env) as rfc7239:
        assert fetch_json(rfc7239, INFO3, headers)["id"] == f"https://iiif.museum.vn/anh/iiif/3/{IMAGE}"
        # two proxies appended elements; proxy_hops = 1 reads the nearest (last) one
        chained = {"Forwarded": "for=192.0.2.1;host=evil.example, for=10.0.0.2;host=iiif.museum.vn;proto=https"}
        assert fetch_json(rfc7239, MANIFEST, chained)["id"] == f"https://iiif.museum.vn{MANIFEST}"
        # and it ignores X-Forwarded-*
        assert fetch_json(rfc7239, INFO3, {"X-Forwarded-Host": "evil.example"})["id"] == f"{rfc7239}/iiif/3/{IMAGE}"


@pytest.mark.parametrize(
    "bad",
    [
        {"X-Forwarded-Host": "evil.example/path"},
        {"X-Forwarded-Host": "evil example"},
        {"X-Forwarded-Host": "a@evil.example"},
        {"Forwarded": 'host="evil.example/x"'},
        {"X-Forwarded-Proto": "javascript"},
        {"X-Forwarded-Prefix": "//evil.example"},
        {"X-Forwarded-Prefix": 'x"><script>'},
    ],
)
def test_a_trusted_proxys_invalid_values_are_not_spliced(proxied: str, bad: dict[str, str]) -> None:
    assert fetch_json(proxied, INFO3, bad)["id"] == f"{proxied}/iiif/3/{IMAGE}"


# -- issue 9.6: negotiation, revalidation, redirects, admin ----------------------------------------

LD_IMAGE3 = 'application/ld+json;profile="http://iiif.io/api/image/3/context.json"'
LD_IMAGE2 = 'application/ld+json;profile="http://iiif.io/api/image/2/context.json"'
LD_PREZI3 = 'application/ld+json;profile="http://iiif.io/api/presentation/3/context.json"'


@pytest.mark.parametrize(
    ("path", "expected"),
    [(INFO3, LD_IMAGE3), (INFO2, LD_IMAGE2), (MANIFEST, LD_PREZI3), ("/iiif/collections/top", LD_PREZI3)],
)
def test_json_ld_with_a_profile_is_negotiated(server: str, path: str, expected: str) -> None:
    """What IIIF clients send: the JSON-LD type with the API's profile, maybe next to plain JSON."""
    for accept in (expected, f"{expected}, application/json;q=0.9", "application/ld+json"):
        status, headers, body = fetch(server, path, {"Accept": accept})
        assert status == 200 and headers["Content-Type"] == expected, accept
        assert "Accept" in headers["Vary"]
        assert json.loads(body)["@context"]
    for accept in ("application/json", "*/*", f"{expected};q=0.5, application/json"):
        assert fetch(server, path, {"Accept": accept})[1]["Content-Type"] == "application/json", accept


def test_without_accept_the_3_0_apis_answer_json_ld(server: str) -> None:
    """Image 3.0 §5.1, Presentation 3.0 §6: JSON-LD with the profile; 2.1 §5: plain JSON."""
    assert fetch(server, INFO3)[1]["Content-Type"] == LD_IMAGE3
    assert fetch(server, MANIFEST)[1]["Content-Type"] == LD_PREZI3
    assert fetch(server, INFO2)[1]["Content-Type"] == "application/json"


@pytest.mark.parametrize("path", [INFO3, INFO2, TILE, MANIFEST, "/iiif/collections/top", "/iiif/activity/page-0"])
def test_weak_etags_from_a_compressing_proxy_revalidate(server: str, path: str) -> None:
    status, headers, _ = fetch(server, path)
    etag = headers["ETag"]
    assert status == 200 and etag.startswith('"')
    for if_none_match in (f"W/{etag}", etag, f'"other", W/{etag}'):
        status, headers, body = fetch(server, path, {"If-None-Match": if_none_match})
        assert (status, body) == (304, b""), if_none_match
        assert headers["ETag"] == etag
    assert fetch(server, path, {"If-None-Match": 'W/"other"'})[0] == 200


@pytest.mark.parametrize("version", ["3", "2"])
def test_a_trailing_slash_redirects_to_info_json(server: str, version: str) -> None:
    status, headers, _ = fetch(server, f"/iiif/{version}/{IMAGE}/")
    assert status == 303
    assert headers["Location"] == f"{server}/iiif/{version}/{IMAGE}/info.json"
    assert fetch(server, f"/iiif/{version}/no-such-image.tif/")[0] == 404


def test_admin_401_names_the_bearer_scheme(server: str) -> None:
    status, headers, body = fetch(server, "/admin/cache/purge", method="POST")
    assert status == 401 and b"bearer token" in body
    assert headers["WWW-Authenticate"] == 'Bearer realm="iiif_server admin"'
    status, headers, _ = fetch(server, "/admin/cache/purge", {"Authorization": "Bearer wrong"}, method="POST")
    assert status == 401 and headers["WWW-Authenticate"].startswith('Bearer realm="iiif_server admin", error=')
    status, _, body = fetch(server, "/admin/cache/purge", {"Authorization": f"Bearer {TOKEN}"}, method="POST")
    assert status == 200 and json.loads(body)["identifier"] is None


def test_a_post_body_is_consumed_and_the_connection_serves_on(server: str) -> None:
    """A body nobody reads (the purge takes none) must not be parsed as the next request."""
    address = urlsplit(server)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
    try:
        body = b'{"identifier": "x"}' + b" " * 700  # small: gthread dropped the connection after 70 KB left unread
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        connection.request("POST", "/admin/cache/purge", body=body, headers=headers)
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["identifier"] is None
        connection.request("POST", "/admin/cache/purge", body=iter([b"a" * 1000, b"b" * 1000]), headers=headers)
        response = connection.getresponse()  # chunked
        assert response.status == 200 and json.loads(response.read())["identifier"] is None
        connection.request("GET", INFO3)
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["id"] == f"{server}/iiif/3/{IMAGE}"
    finally:
        connection.close()


def test_head_and_options_answer_like_get(server: str) -> None:
    for path in (INFO3, TILE, MANIFEST):
        _, got, body = fetch(server, path)
        status, headers, empty = fetch(server, path, method="HEAD")
        assert (status, empty) == (200, b"") and headers["Content-Length"] == str(len(body)), path
        assert headers["ETag"] == got["ETag"] and headers["Content-Type"] == got["Content-Type"], path
        assert headers["Access-Control-Allow-Origin"] == "*"
    preflight = {"Origin": "https://viewer.example", "Access-Control-Request-Headers": "Range"}
    for path in (INFO3, MANIFEST):
        status, headers, _ = fetch(server, path, preflight, method="OPTIONS")
        assert status in (200, 204) and headers["Access-Control-Allow-Origin"] == "*", path
        assert "GET" in headers["Access-Control-Allow-Methods"] and "Range" in headers["Access-Control-Allow-Headers"]


def answer(base: str, path: str, headers: dict[str, str]) -> tuple[str, dict[str, str], bytes]:
    """Status line, headers (names lower-cased; the Date and Server of the moment left out) and body."""
    address = urlsplit(base)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
    try:
        connection.putrequest("GET", path, skip_host="Host" in headers, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        kept = {k.lower(): v for k, v in response.getheaders() if k.lower() not in ("date", "server", "connection")}
        return f"{response.status} {response.reason}", kept, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("page", "image", "headers"),
    [
        ("/iiif/manifests/NO-SUCH", "/iiif/3/no-such-image.tif/info.json", {}),  # NotFound
        (MANIFEST, INFO3, {"Host": "bad host"}),  # InvalidRequest
    ],
)
def test_flask_pages_and_the_image_endpoint_answer_an_error_alike(
    server: str, page: str, image: str, headers: dict[str, str]
) -> None:
    """One error -> status table, one status line, one body shape, whichever side raised it."""
    page_status, page_headers, page_body = answer(server, page, headers)
    image_status, image_headers, image_body = answer(server, image, headers)
    assert page_status == image_status and page_status[:3] in ("400", "404")
    assert page_headers.keys() == image_headers.keys()
    for name in ("content-type", "cache-control", "access-control-allow-origin", "access-control-expose-headers"):
        assert page_headers[name] == image_headers[name], name
    for body, found in ((page_body, page_headers), (image_body, image_headers)):
        assert body.endswith(b"\n") and body.count(b"\n") == 1 and found["content-length"] == str(len(body))
    assert page_headers["content-type"] == "text/plain; charset=utf-8" and page_headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", [INFO3, TILE])
def test_manifests_and_images_revalidate_alike(server: str, path: str) -> None:
    """The same conditional GET for both: weak If-None-Match, ``*``, If-None-Match over If-Modified-Since,
    If-Modified-Since only where Last-Modified was sent (images; a manifest has no date)."""
    later = formatdate(time.time(), usegmt=True)  # after every file's mtime; a future date would be invalid
    cases = [
        ({"If-None-Match": "{etag}"}, True),
        ({"If-None-Match": "W/{etag}"}, True),
        ({"If-None-Match": "*"}, True),
        ({"If-None-Match": '"other"'}, False),
        ({"If-None-Match": '"other"', "If-Modified-Since": later}, False),
        ({"If-Modified-Since": later}, None),  # fresh if and only if the 200 carried Last-Modified
    ]
    for resource in (MANIFEST, path):
        first, got, _ = answer(server, resource, {})
        assert first == "200 OK"
        for asked, fresh in cases:
            sent = {name: value.format(etag=got["etag"]) for name, value in asked.items()}
            status, headers, body = answer(server, resource, sent)
            expected = ("last-modified" in got) if fresh is None else fresh
            assert status[:3] == ("304" if expected else "200"), (resource, sent)
            if expected:
                assert body == b"" and status == "304 Not Modified"
                for name in ("etag", "cache-control", "last-modified", "access-control-allow-origin"):
                    assert headers.get(name) == got.get(name), (resource, name)
    assert "last-modified" not in answer(server, MANIFEST, {})[1] and "last-modified" in answer(server, path, {})[1]
