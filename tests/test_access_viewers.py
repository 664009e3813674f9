"""Issue 12, what viewers see of a restricted image (real gunicorn, real HTTP): info.json with the
Authorization Flow 2.0 probe and the Authentication 1.0 login, the preview tier (Auth 1.0 §3.2: 302),
the probe service (Auth 2.0 §5), and the 401 challenge (RFC 9110 §15.5.2).

Before, a restricted image's info.json named no service, no tier existed, there was no probe and a
401 carried no WWW-Authenticate.
"""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from iiif_server.check import free_port, running_server
from tests.access_site import add_user, server_env
from tests.conftest import decode, make_pattern, save_pyramid
from tests.test_access_authorised import PASSWORDS, Connection, _login, _private

WIDTH, HEIGHT = 2400, 1800  # degraded: 1000 x 750
AUTH2 = "http://iiif.io/api/auth/2/context.json"
EXPORT = (
    "inventory_no,title_vi,access,images\nR-1,Mở,public,open.tif\nR-2,Bia,{level},stele.tif\n"
    "R-3,Kho,internal,vault.tif\n"
)


@pytest.fixture(scope="module", params=["asgi", "gthread"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    base = tmp_path_factory.mktemp("viewers")
    images, state = base / "images", base / "state"
    images.mkdir()
    pattern = make_pattern(WIDTH, HEIGHT)
    for name in ("open", "stele", "vault"):
        save_pyramid(pattern, images / f"{name}.tif", compression="jpeg")
    export = base / "collection.csv"
    export.write_text(EXPORT.format(level="restricted"), encoding="utf-8")
    add_user(state, "alice", "restricted", PASSWORDS["alice"])
    env = server_env(export, state, request.param, access_check_interval="0")
    with running_server(
        ["serve", "--images", str(images), "--workers", "1"], free_port(), env, log=base / "log"
    ) as url:
        yield url, export


@pytest.fixture
def connection(site: tuple[str, Path]) -> Iterator[Connection]:
    connection = Connection(site[0])
    yield connection
    connection.close()


def _services(document: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    probe, login = document["service"]
    return probe, login


def _check_services(base: str, document: dict[str, Any], v3: bool) -> None:
    probe, login = _services(document)
    assert probe["id"] == f"{base}/auth/2/probe/stele.tif" and probe["type"] == "AuthProbeService2"
    assert [s["profile"] for s in probe["service"]] == ["active"]
    active = probe["service"][0]
    assert active["id"] == f"{base}/auth/login" and active["type"] == "AuthAccessService2"
    assert [(s["type"], s["id"]) for s in active["service"]] == [
        ("AuthAccessTokenService2", f"{base}/auth/2/token"),
        ("AuthLogoutService2", f"{base}/auth/2/logout"),
    ]
    assert login["@id"] == f"{base}/auth/1/login" and login["profile"] == "http://iiif.io/api/auth/1/login"
    assert [(s["@id"], s["profile"]) for s in login["service"]] == [
        (f"{base}/auth/1/token", "http://iiif.io/api/auth/1/token"),
        (f"{base}/auth/1/logout", "http://iiif.io/api/auth/1/logout"),
    ]
    if v3:  # Auth 2.0 §2.1: the auth context first; Presentation 3.0: no @context inside a service
        assert document["@context"] == [AUTH2, "http://iiif.io/api/image/3/context.json"]
        assert "@context" not in probe and "@context" not in login and login["@type"] == "AuthCookieService1"
    else:  # Image 2.1 §5.3: each service with its own context
        assert document["@context"] == "http://iiif.io/api/image/2/context.json"
        assert probe["@context"] == AUTH2 and login["@context"] == "http://iiif.io/api/auth/1/context.json"


@pytest.mark.parametrize("version", ["3", "2"])
def test_anonymous_info_json_redirects_to_the_preview_tier_which_describes_the_flow(
    site: tuple[str, Path], connection: Connection, version: str
) -> None:
    base, _ = site
    status, headers, _ = connection.get(f"/iiif/{version}/stele.tif/info.json")
    tier = f"{base}/iiif/{version}/stele.tif~preview"
    assert status == 302 and headers["location"] == tier + "/info.json"
    assert headers["cache-control"] == "private" and _private(headers)
    status, headers, body = connection.get(f"/iiif/{version}/stele.tif~preview/info.json")
    assert status == 200 and _private(headers)
    document = json.loads(body)
    assert document["id" if version == "3" else "@id"] == tier
    _check_services(base, document, version == "3")
    assert (document["width"], document["height"]) == (1000, 750)  # an image of its own, at the degraded size
    assert all(max(s["width"], s["height"]) <= 1000 for s in document["sizes"])
    assert [t["scaleFactors"][0] for t in document["tiles"]] == [1]
    # the tier's images: the watermarked degraded view, the same as the full tier's anonymous one
    status, headers, body = connection.get(f"/iiif/{version}/stele.tif~preview/full/max/0/default.jpg")
    assert status == 200 and decode(body).width == 1000 and _private(headers)
    _, full_headers, full_tier = connection.get(f"/iiif/{version}/stele.tif/full/max/0/default.jpg")
    assert body == full_tier and headers["etag"] != full_headers["etag"]  # the same pixels, another resource
    status, _, body = connection.get(f"/iiif/{version}/stele.tif~preview/full/1001,/0/default.jpg")
    assert status == 400, body  # nothing sharper than the tier: it never upscales
    # beyond the degraded view at the image's own URLs: 401 with a challenge
    status, headers, body = connection.get(f"/iiif/{version}/stele.tif/0,0,256,256/256,/0/default.jpg")
    assert status == 401 and headers["www-authenticate"] == 'Bearer realm="IIIF"'


def _tier_tiles(document: dict[str, Any]) -> Iterator[tuple[tuple[int, int, int, int], tuple[int, int]]]:
    """Every tile the document invites, as OpenSeadragon computes them: (region, size) in its pixels."""
    width, height = document["width"], document["height"]
    for tiles in document["tiles"]:
        for factor in tiles["scaleFactors"]:
            side_w, side_h = tiles["width"] * factor, tiles["height"] * factor
            for y in range(0, height, side_h):
                for x in range(0, width, side_w):
                    w, h = min(side_w, width - x), min(side_h, height - y)
                    yield (x, y, w, h), (-(-w // factor), -(-h // factor))


def _master_edge(at: int, tier_side: int, master_side: int) -> int:
    """Where a tier edge lies on the 2400 x 1800 master: F = 2.4, rounded down; the far edge is the master's."""
    return master_side if at == tier_side else at * 12 // 5


@pytest.mark.parametrize("version", ["3", "2"])
def test_every_tile_the_preview_invites_is_served_at_its_size_and_watermarked(
    site: tuple[str, Path], connection: Connection, version: str
) -> None:
    """Issue 12: the info.json seen anonymously must not invite a viewer to request what it will be refused.
    Before, the tier described the master's 2400 x 1800 with scale factors 4, 8, 16, and OpenSeadragon
    asked it for scale-1 and scale-2 tiles: 401."""
    from tests.test_watermark import mean_diff, motif_mask  # the same motif the renderer draws

    base, _ = site
    document = json.loads(connection.get(f"/iiif/{version}/stele.tif~preview/info.json")[2])
    assert (document["width"], document["height"]) == (1000, 750)
    factors = document["tiles"][0]["scaleFactors"]
    assert factors == [1, 2, 4]  # 256-px tiles of 1000 x 750: the top level is the tier itself
    features = document["extraFeatures"] if version == "3" else document["profile"][1]["supports"]
    assert not {"sizeUpscaling", "sizeAboveFull"} & set(features)
    tier = f"{base}/iiif/{version}/stele.tif~preview"
    seen, marked = 0, 0
    for (x, y, w, h), (out_w, out_h) in _tier_tiles(document):
        size = f"{out_w},{out_h}" if version == "3" else f"{out_w},"  # OpenSeadragon's forms
        status, headers, body = connection.get(f"{urlsplit(tier).path}/{x},{y},{w},{h}/{size}/0/default.jpg")
        assert status == 200, (x, y, w, h, body)
        tile = decode(body)
        assert (tile.width, tile.height) == (out_w, out_h) and _private(headers)
        canonical = headers["link"].split(";")[0].strip("<>")
        assert canonical.startswith(f"{tier}/") and canonical.split("/")[-4] in ("full", f"{x},{y},{w},{h}")
        # the same part of the picture as the public copy, with the motif where the renderer draws it
        left, top = _master_edge(x, 1000, WIDTH), _master_edge(y, 750, HEIGHT)
        right, bottom = _master_edge(x + w, 1000, WIDTH), _master_edge(y + h, 750, HEIGHT)
        region = f"{left},{top},{right - left},{bottom - top}"
        status, _, plain_body = connection.get(f"/iiif/{version}/open.tif/{region}/{out_w},{out_h}/0/default.jpg")
        assert status == 200 and plain_body != body
        plain = decode(plain_body)
        mask = motif_mask(out_w, out_h, (left, top), out_w / (right - left))
        assert mean_diff(tile, plain, 1 - mask) < 6, (x, y, w, h)  # the same region, the same scale
        if mask.avg() > 0.02:
            assert mean_diff(tile, plain, mask) > 20, (x, y, w, h)
            marked += 1
        seen += 1
    assert seen == 12 + 4 + 1 and marked >= seen // 2
    # nothing sharper than the tier is reachable through it; its own full size is
    for params in ("full/1001,", "full/1000,751", "0,0,100,100/200,", "0,0,1000,750/pct:101", "1000,0,10,10/max"):
        status, _, _ = connection.get(f"/iiif/{version}/stele.tif~preview/{params}/0/default.jpg")
        assert status == 400, params
    if version == "3":
        for params in ("full/^1001,", "0,0,500,375/^max", "0,0,10,10/^pct:200"):
            assert connection.get(f"/iiif/3/stele.tif~preview/{params}/0/default.jpg")[0] == 400, params
        status, _, body = connection.get("/iiif/3/stele.tif~preview/full/^max/90/default.png")
        assert status == 200 and (decode(body).width, decode(body).height) == (750, 1000)
    # the image's own URLs keep their rules: the degraded view served, anything sharper 401
    status, _, body = connection.get(f"/iiif/{version}/stele.tif/1200,0,1200,1200/500,/0/default.jpg")
    assert status == 200 and decode(body).width == 500
    assert connection.get(f"/iiif/{version}/stele.tif/1200,0,1200,1200/501,/0/default.jpg")[0] == 401
    assert connection.get(f"/iiif/{version}/stele.tif/full/1001,/0/default.jpg")[0] == 401


def test_a_session_gets_the_full_document_with_services_and_the_tier_stays_degraded(
    site: tuple[str, Path], connection: Connection
) -> None:
    base, _ = site
    token = _login(base, "alice")
    status, headers, body = connection.get("/iiif/3/stele.tif/info.json", token)
    assert status == 200 and _private(headers)
    document = json.loads(body)
    assert document["id"] == f"{base}/iiif/3/stele.tif" and document.get("maxWidth") != 1000
    _check_services(base, document, True)
    status, _, body = connection.get("/iiif/3/stele.tif~preview/full/max/0/default.jpg", token)
    assert status == 200 and decode(body).width == 1000  # the tier is the preview, whoever asks
    tile = "/iiif/3/stele.tif~preview/0,0,256,256/256,/0/default.jpg"  # in tier pixels: 0,0,614,614 of the master
    assert connection.get(tile, token)[2] == connection.get(tile)[2]  # watermarked for a session too
    assert connection.get("/iiif/3/stele.tif~preview/full/^1200,/0/default.jpg", token)[0] == 400


def test_public_info_json_is_unchanged_and_tiers_do_not_open_anything(
    site: tuple[str, Path], connection: Connection
) -> None:
    status, headers, body = connection.get("/iiif/3/open.tif/info.json")
    document = json.loads(body)
    assert status == 200 and headers["cache-control"].startswith("public") and "service" not in document
    assert document["@context"] == "http://iiif.io/api/image/3/context.json"
    for path in (
        "/iiif/3/open.tif~preview/info.json",  # a public image has no lower tier
        "/iiif/3/vault.tif~preview/info.json",  # a hidden one is not revealed
        "/iiif/3/missing.tif~preview/info.json",
        "/iiif/3/stele.tif~preview~preview/info.json",  # no tier of a tier
        "/iiif/3/stele~preview.tif/info.json",
        "/auth/2/probe/stele.tif~preview",
    ):
        status, headers, _ = connection.get(path)
        assert status == 404, path
    status, _, body = connection.get("/iiif/3/stele~preview/info.json")  # the tier of "stele" (no extension)
    assert status == 200 and json.loads(body)["width"] == 1000


def test_the_probe_tells_what_the_full_image_would_answer(site: tuple[str, Path], connection: Connection) -> None:
    base, _ = site
    status, headers, body = connection.get("/auth/2/probe/stele.tif")
    assert status == 200 and headers["cache-control"] == "no-store" and headers["access-control-allow-origin"] == "*"
    result = json.loads(body)
    assert (result["@context"], result["type"], result["status"]) == (AUTH2, "AuthProbeResult2", 401)
    assert result["substitute"] == [
        {
            "id": f"{base}/iiif/3/stele.tif~preview",
            "type": "ImageService3",
            "profile": "level2",
            "label": {"vi": ["Bản xem trước có hình mờ"], "en": ["Watermarked preview"]},
        }
    ]
    assert set(result["heading"]) == set(result["note"]) == {"vi", "en"}
    token = _login(base, "alice")
    result = json.loads(connection.get("/auth/2/probe/stele.tif", token)[2])
    assert result == {"@context": AUTH2, "type": "AuthProbeResult2", "status": 200}
    assert json.loads(connection.get("/auth/2/probe/open.tif")[2])["status"] == 200
    assert connection.get("/auth/2/probe/vault.tif")[0] == 404
    assert connection.get("/auth/2/probe/missing.tif")[0] == 404
    # a cross-origin probe with a bearer token: the preflight allows the Authorization header
    host = base.removeprefix("http://")
    preflight = http.client.HTTPConnection(host, timeout=10)
    preflight.request(
        "OPTIONS",
        "/auth/2/probe/stele.tif",
        headers={
            "Origin": "https://viewer.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    response = preflight.getresponse()
    response.read()
    assert response.status == 204 and response.getheader("Access-Control-Allow-Origin") == "*"
    assert "authorization" in (response.getheader("Access-Control-Allow-Headers") or "").lower()
    assert "GET" in (response.getheader("Access-Control-Allow-Methods") or "")
    preflight.close()


def test_a_level_change_in_the_export_changes_the_services_on_the_next_request(
    site: tuple[str, Path], connection: Connection
) -> None:
    _, export = site
    assert connection.get("/iiif/3/stele.tif/info.json")[0] == 302
    try:
        for level in ("public", "restricted"):
            replacement = export.with_suffix(".new")
            replacement.write_text(EXPORT.format(level=level), encoding="utf-8")
            os.replace(replacement, export)
            time.sleep(0.05)
            status, headers, body = connection.get("/iiif/3/stele.tif/info.json")
            if level == "public":
                assert status == 200 and "service" not in json.loads(body)
                assert headers["cache-control"].startswith("public")
                assert connection.get("/auth/2/probe/stele.tif")[2].find(b'"status":200') > 0
            else:
                assert status == 302
                assert "service" in json.loads(connection.get("/iiif/3/stele.tif~preview/info.json")[2])
    finally:
        export.write_text(EXPORT.format(level="restricted"), encoding="utf-8")
