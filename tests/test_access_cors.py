"""Issue 12, viewers on the museum's own web site: a page of a trusted origin (this site's or one of
``[access] token_origins``) reads a restricted image's answers with the viewer's session cookie
(fetch ``credentials: "include"``, OpenSeadragon ``ajaxWithCredentials``), which browsers allow only
with the exact origin and ``Access-Control-Allow-Credentials: true``, never with ``*`` (real
gunicorn, real HTTP, both worker types).

Before, every answer said ``Access-Control-Allow-Origin: *``: such a viewer stayed anonymous and was
sent to the preview tier.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from iiif_server.check import free_port, running_server
from iiif_server.http import credentialed_cors, trusted_origin
from tests.access_site import add_user, server_env
from tests.conftest import decode, make_pattern, save_pyramid
from tests.test_access_authorised import PASSWORDS, Connection, _login

WIDTH, HEIGHT = 2400, 1800  # degraded: 1000 x 750
MUSEUM = "https://www.museum.example"  # listed in token_origins
STRANGER = "https://elsewhere.example"  # not listed
PUBLIC_TILE = "/iiif/3/open.tif/0,0,512,512/256,/0/default.jpg"


@pytest.fixture(scope="module", params=["asgi", "gthread"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("cors")
    images, state = base / "images", base / "state"
    images.mkdir()
    pattern = make_pattern(WIDTH, HEIGHT)
    for name in ("open", "stele"):
        save_pyramid(pattern, images / f"{name}.tif", compression="jpeg")
    export = base / "collection.csv"
    export.write_text(
        "inventory_no,title_vi,access,images\nR-1,Mở,public,open.tif\nR-2,Bia,restricted,stele.tif\n",
        encoding="utf-8",
    )
    add_user(state, "alice", "restricted", PASSWORDS["alice"])
    env = server_env(export, state, request.param, access_token_origins=f"{MUSEUM},https://other.example")
    with running_server(
        ["serve", "--images", str(images), "--workers", "1"], free_port(), env, log=base / "log"
    ) as url:
        yield url


@pytest.fixture
def connection(site: str) -> Iterator[Connection]:
    connection = Connection(site)
    yield connection
    connection.close()


def _vary(headers: dict[str, str]) -> set[str]:
    return {v.strip().lower() for v in headers.get("vary", "").split(",")}


def _credentialed(headers: dict[str, str], origin: str) -> bool:
    return (
        headers["access-control-allow-origin"] == origin
        and headers.get("access-control-allow-credentials") == "true"
        and {"origin", "cookie", "authorization"} <= _vary(headers)
    )


def _starred(headers: dict[str, str]) -> bool:
    return headers["access-control-allow-origin"] == "*" and "access-control-allow-credentials" not in headers


def test_a_listed_origin_reads_the_full_document_with_the_session_cookie(site: str, connection: Connection) -> None:
    token = _login(site, "alice")
    status, headers, body = connection.get("/iiif/3/stele.tif/info.json", token, Origin=MUSEUM)
    assert status == 200 and _credentialed(headers, MUSEUM)
    document = json.loads(body)
    assert document["id"] == f"{site}/iiif/3/stele.tif" and document["width"] == WIDTH
    assert "maxWidth" not in document or document["maxWidth"] > 1000
    assert headers["access-control-expose-headers"] == "Link, ETag, Last-Modified"
    status, headers, body = connection.get(
        "/iiif/3/stele.tif/0,0,1024,1024/1024,/0/default.jpg", token, Origin=MUSEUM
    )  # a full-resolution tile
    assert status == 200 and decode(body).width == 1024 and _credentialed(headers, MUSEUM)
    etag = headers["etag"]
    status, headers, _ = connection.get(
        "/iiif/3/stele.tif/0,0,1024,1024/1024,/0/default.jpg", token, Origin=MUSEUM, **{"If-None-Match": etag}
    )
    assert status == 304 and _credentialed(headers, MUSEUM)
    # this site's own origin is trusted as well (as the request reached it)
    _, headers, _ = connection.get("/iiif/3/stele.tif/info.json", token, Origin=site)
    assert _credentialed(headers, site)
    # the probe, with the cookie of a viewer on a trusted site
    status, headers, body = connection.get("/auth/2/probe/stele.tif", token, Origin=MUSEUM)
    assert status == 200 and json.loads(body)["status"] == 200 and _credentialed(headers, MUSEUM)


def test_anonymous_answers_of_a_restricted_image_name_the_listed_origin_too(connection: Connection) -> None:
    """The 302 to the tier is followed by the browser only if it passes CORS itself."""
    status, headers, _ = connection.get("/iiif/3/stele.tif/info.json", Origin=MUSEUM)
    assert status == 302 and headers["location"].endswith("/iiif/3/stele.tif~preview/info.json")
    assert _credentialed(headers, MUSEUM)
    status, headers, body = connection.get("/iiif/3/stele.tif~preview/info.json", Origin=MUSEUM)
    assert status == 200 and json.loads(body)["maxWidth"] == 1000 and _credentialed(headers, MUSEUM)
    status, headers, body = connection.get("/iiif/3/stele.tif/full/max/0/default.jpg", Origin=MUSEUM)
    assert status == 200 and decode(body).width == 1000 and _credentialed(headers, MUSEUM)
    status, headers, _ = connection.get("/iiif/2/stele.tif/0,0,1024,1024/1024,/0/default.jpg", Origin=MUSEUM)
    assert status == 401 and headers["www-authenticate"] == 'Bearer realm="IIIF"'
    assert headers["access-control-allow-origin"] == MUSEUM and headers["access-control-allow-credentials"] == "true"
    assert "origin" in _vary(headers)
    status, headers, body = connection.get("/auth/2/probe/stele.tif", Origin=MUSEUM)
    assert json.loads(body)["status"] == 401 and _credentialed(headers, MUSEUM)


def test_an_unlisted_origin_keeps_the_star_so_its_credentialed_reads_fail(site: str, connection: Connection) -> None:
    token = _login(site, "alice")
    for origin in (STRANGER, MUSEUM + ".evil.example", MUSEUM + ":8443", "null", "http://www.museum.example"):
        for path in ("/iiif/3/stele.tif/info.json", "/auth/2/probe/stele.tif"):
            status, headers, _ = connection.get(path, token, Origin=origin)
            assert status == 200 and _starred(headers), (origin, path)
            assert "origin" in _vary(headers)  # a browser must not reuse it for the trusted page
        status, headers, _ = connection.get("/iiif/3/stele.tif/info.json", Origin=origin)
        assert status == 302 and _starred(headers)
    _, headers, _ = connection.get("/iiif/3/stele.tif/info.json", token)  # no Origin (a navigation)
    assert _starred(headers) and "origin" in _vary(headers)


def _raw(site: str, path: str, extra: str = "") -> tuple[bytes, bytes]:
    """The head (without Date) and body of one answer, as sent on the wire."""
    host = site.removeprefix("http://")
    address, port = host.rsplit(":", 1)
    with socket.create_connection((address, int(port)), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"date:")]
    return b"\r\n".join(lines), body


def test_public_answers_ignore_origin_byte_for_byte(site: str) -> None:
    """Public tiles and info.json: ``*``, no Vary on Origin, the very bytes a request without Origin
    gets (under asgi the replay's: the key has no Origin, and the answer kept is sent again)."""
    for path in (PUBLIC_TILE, "/iiif/3/open.tif/info.json"):
        plain = [_raw(site, path) for _ in range(3)]  # on a thread, then inline and kept: replays
        for origin in (MUSEUM, STRANGER):
            head, body = _raw(site, path, f"Origin: {origin}\r\n")
            assert (head, body) == plain[-1], path
        lines = head.lower().split(b"\r\n")
        assert b"access-control-allow-origin: *" in lines and not any(b"credentials" in line for line in lines)
        assert not any(line.startswith(b"vary:") and b"origin" in line for line in lines)


def test_a_preflight_from_a_listed_origin_is_answered_for_it(site: str) -> None:
    host = site.removeprefix("http://")
    for path in ("/iiif/3/stele.tif/info.json", "/auth/2/probe/stele.tif", PUBLIC_TILE):
        for origin, credentialed in ((MUSEUM, True), (STRANGER, False)):
            connection = http.client.HTTPConnection(host, timeout=10)
            connection.request(
                "OPTIONS",
                path,
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization",
                },
            )
            response = connection.getresponse()
            response.read()
            headers = {k.lower(): v for k, v in response.getheaders()}
            connection.close()
            assert response.status == 204 and "authorization" in headers["access-control-allow-headers"]
            assert "origin" in _vary(headers)
            if credentialed:
                assert headers["access-control-allow-origin"] == MUSEUM, path
                assert headers["access-control-allow-credentials"] == "true"
            else:
                assert _starred(headers), path


# -- in-process: the one place that decides -----------------------------------------------------


def _environ(origin: str | None, host: str = "iiif.museum.example", scheme: str = "https") -> dict[str, str]:
    environ = {"HTTP_HOST": host, "wsgi.url_scheme": scheme, "SCRIPT_NAME": ""}
    if origin is not None:
        environ["HTTP_ORIGIN"] = origin
    return environ


def test_trusted_origins_are_this_sites_and_the_listed_ones_only() -> None:
    listed = frozenset({"https://www.museum.example"})
    assert trusted_origin(_environ("https://www.museum.example"), "", listed) == "https://www.museum.example"
    assert trusted_origin(_environ("https://iiif.museum.example"), "", listed) == "https://iiif.museum.example"
    assert trusted_origin(_environ("https://IIIF.museum.example"), "", listed) == "https://IIIF.museum.example"
    public = "https://images.museum.example/prefix"  # [server] public_base_url: its origin counts
    assert trusted_origin(_environ("https://images.museum.example", "10.0.0.5:8000", "http"), public, listed)
    for origin in (None, "", "null", "http://www.museum.example", "https://www.museum.example.evil", "*"):
        assert trusted_origin(_environ(origin), "", listed) is None, origin
    assert trusted_origin(_environ("https://x", host="bad host/"), "", listed) is None  # invalid Host: no 400 here
    headers = dict(credentialed_cors(_environ(STRANGER), "", listed))
    assert headers["Access-Control-Allow-Origin"] == "*" and "Access-Control-Allow-Credentials" not in headers
    headers = dict(credentialed_cors(_environ("https://www.museum.example"), "", listed))
    assert headers["Access-Control-Allow-Credentials"] == "true" and headers["X-Content-Type-Options"] == "nosniff"


def test_a_public_answer_never_reads_origin(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot path: a public tile's CORS is the constant ``*``, decided without the Origin header."""

    def refuse(*args: object) -> None:
        raise AssertionError("credentialed_cors called for a public answer")

    monkeypatch.setattr("iiif_server.image.routes.credentialed_cors", refuse)
    for path in ("/iiif/3/pattern.tif/info.json", "/iiif/3/pattern.tif/0,0,256,256/256,/0/default.jpg"):
        response = client.get(path, headers={"Origin": MUSEUM})
        assert response.status_code == 200 and response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Origin" not in response.headers.get("Vary", "")
