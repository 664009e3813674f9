"""Access levels from the collection export: a restricted image's degraded public view, a hidden one
404, and a tightening that takes effect on the next request in every cache tier (issue 12).

Over real HTTP against gunicorn (uvicorn workers, replay on), then in-process for the level map.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from iiif_server.access import ALLOWED, Degraded, Denied
from iiif_server.access import levels as levels_module
from iiif_server.access.levels import LevelMap
from iiif_server.access.tiered import TieredPolicy
from iiif_server.check import free_port, running_server
from iiif_server.config import AccessSettings, Settings
from iiif_server.errors import ConfigError
from iiif_server.image.plan import Resolved, within_degraded
from iiif_server.image.sources import FileSource
from tests.conftest import block_colour, decode, make_pattern, pixel, save_pyramid

WIDTH, HEIGHT = 2400, 1800  # degraded: 1000 x 750
HEADER = "inventory_no,title_vi,access,images\n"


def _export(path: Path, **levels: str) -> None:
    """One record per image: ``stem=level``."""
    rows = "".join(f"R-{i},Hiện vật {i},{level},{stem}.tif\n" for i, (stem, level) in enumerate(levels.items()))
    staged = path.with_suffix(".new")
    staged.write_text(HEADER + rows, encoding="utf-8")
    staged.replace(path)  # as an export tool writes it: a new inode, never a half-written file


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("access") / "images"
    root.mkdir()
    pattern = make_pattern(WIDTH, HEIGHT)
    for name in ("open", "stele", "vault", "later"):
        save_pyramid(pattern, root / f"{name}.tif", compression="jpeg")
    return root


@pytest.fixture(scope="module")
def server(images: Path) -> Iterator[tuple[str, Path]]:
    export = images.parent / "collection.csv"
    _export(export, open="public", stele="restricted", vault="internal", later="public")
    env = {
        "IIIF_SERVER_SERVER_WORKER": "asgi",
        "IIIF_SERVER_MANIFESTS_SOURCE": str(export),
        "IIIF_SERVER_MANIFESTS_STATE_DIR": str(images.parent / "state"),
        "IIIF_SERVER_ACCESS_CHECK_INTERVAL": "0",  # a tightening is seen on the very next request
    }
    args = ["serve", "--images", str(images), "--workers", "2"]
    with running_server(args, free_port(), env, log=images.parent / "server.log") as base:
        yield base, export


class Client:
    """One keep-alive connection, as a viewer holds it."""

    def __init__(self, base: str) -> None:
        self.connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        self.connection.request("GET", path)
        response = self.connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


@pytest.fixture
def client(server: tuple[str, Path]) -> Iterator[Client]:
    client = Client(server[0])
    yield client
    client.connection.close()


def _size(body: bytes) -> tuple[int, int]:
    image = decode(body)
    return image.width, image.height


@pytest.mark.parametrize(
    ("path", "size"),
    [
        ("/iiif/3/stele.tif/full/max/0/default.jpg", (1000, 750)),  # max: the largest this client may have
        ("/iiif/3/stele.tif/full/1000,/0/default.jpg", (1000, 750)),
        ("/iiif/3/stele.tif/full/max/90/default.jpg", (750, 1000)),
        ("/iiif/3/stele.tif/pct:0,0,50,50/max/0/default.jpg", (500, 375)),  # the region at the degraded scale
        ("/iiif/3/stele.tif/0,0,1024,1024/256,/0/default.jpg", (256, 256)),  # a tile of scale factor 4
        ("/iiif/2/stele.tif/full/full/0/default.jpg", (1000, 750)),
        ("/iiif/3/open.tif/full/max/0/default.jpg", (WIDTH, HEIGHT)),  # public: as before
    ],
)
def test_anonymous_clients_get_at_most_the_degraded_view(client: Client, path: str, size: tuple[int, int]) -> None:
    status, headers, body = client.get(path)
    assert status == 200, body
    assert _size(body) == size
    if path.startswith("/iiif/3/stele.tif/full/max/0/"):  # the same picture, reduced: block (3, 2) where it was
        assert all(abs(a - b) < 12 for a, b in zip(pixel(decode(body), 145, 104), block_colour(3, 2), strict=True))
    if "stele" in path:
        assert headers["cache-control"].startswith("private")
        assert "Cookie" in headers["vary"] and "Authorization" in headers["vary"]
    else:
        assert headers["cache-control"] == "public, max-age=86400" and "vary" not in headers


@pytest.mark.parametrize(
    "path",
    [
        "/iiif/3/stele.tif/full/2000,/0/default.jpg",
        "/iiif/3/stele.tif/full/1100,/90/default.jpg",
        "/iiif/3/stele.tif/0,0,256,256/256,/0/default.jpg",  # a stored full-resolution tile (pass-through)
        "/iiif/3/stele.tif/0,0,512,512/256,/0/default.jpg",  # scale factor 2: sharper than 1000 px
        "/iiif/3/stele.tif/pct:0,0,25,25/600,/0/default.png",  # a pct: region of the full level
        "/iiif/3/stele.tif/square/1800,/0/default.jpg",
        "/iiif/3/stele.tif/0,0,100,100/^1000,/0/default.jpg",  # upscaling a small region
        "/iiif/3/stele.tif/0,0,1,1/1,/0/default.png",  # one source pixel at a time
        "/iiif/3/stele/full/2000,/0/default.jpg",  # another spelling of the same file
        "/iiif/2/stele.tif/0,0,256,256/256,/0/default.jpg",
        "/iiif/2/stele.tif/full/2400,/0/default.jpg",
    ],
)
def test_anything_sharper_is_401(client: Client, path: str) -> None:
    status, headers, body = client.get(path)
    assert status == 401, body
    assert body.count(b"\n") == 1 and b"1000 pixels" in body
    assert headers["cache-control"] == "no-store"


def test_info_json_offers_only_the_degraded_view(client: Client) -> None:
    status, headers, _ = client.get("/iiif/3/stele.tif/info.json")
    assert status == 302 and headers["location"].endswith("/iiif/3/stele.tif~preview/info.json")  # Auth 1.0 §3.2
    status, headers, body = client.get("/iiif/3/stele.tif~preview/info.json")
    assert status == 200
    info = json.loads(body)
    assert (info["width"], info["height"]) == (1000, 750)  # the tier: an image of its own, at the degraded size
    assert (info["maxWidth"], info["maxHeight"]) == (1000, 1000)  # its long side, any rotation
    assert info["sizes"] and all(s["width"] <= 1000 and s["height"] <= 750 for s in info["sizes"])
    assert [tile["scaleFactors"][0] for tile in info["tiles"]] == [1]  # a viewer's top level: the tier's size
    assert headers["cache-control"].startswith("private") and "Cookie" in headers["vary"]
    # every size and tile it offers is served by the tier, in its own pixels
    for size in info["sizes"]:
        status, _, body = client.get(f"/iiif/3/stele.tif~preview/full/{size['width']},/0/default.jpg")
        assert status == 200 and _size(body) == (size["width"], size["height"])
    tile = info["tiles"][0]
    side = tile["width"]
    status, _, body = client.get(f"/iiif/3/stele.tif~preview/0,0,{side},{side}/{side},/0/default.jpg")
    assert status == 200 and _size(body) == (side, side)
    v2 = json.loads(client.get("/iiif/2/stele.tif~preview/info.json")[2])
    assert (v2["width"], v2["height"], v2["profile"][1]["maxWidth"]) == (1000, 750, 1000)
    public = json.loads(client.get("/iiif/3/open.tif/info.json")[2])
    assert public.get("maxWidth", WIDTH) >= WIDTH and 1 in public["tiles"][0]["scaleFactors"]


def test_a_hidden_image_is_not_found_like_a_missing_one(client: Client) -> None:
    for path in ("/iiif/3/vault.tif/info.json", "/iiif/3/vault.tif/full/100,/0/default.jpg", "/iiif/2/vault.tif"):
        status, _, body = client.get(path)
        missing = client.get(path.replace("vault", "nowhere"))
        assert status == missing[0] == 404
        assert body == missing[2].replace(b"nowhere", b"vault")
    status, _, page = client.get("/status")
    assert status == 200
    assert b"vault.tif" not in page
    assert b"stele.tif/full/!400,400/0/default.jpg" in page and b"restricted" in page


def test_a_tightening_is_enforced_on_the_next_request_in_every_tier(server: tuple[str, Path], client: Client) -> None:
    _, export = server
    tile = "/iiif/3/later.tif/0,0,256,256/256,/0/default.jpg"  # pass-through, then replayed
    rendered = "/iiif/3/later.tif/full/max/0/default.jpg"  # rendered, then the memory tier's (and replayed)
    info = "/iiif/3/later.tif/info.json"
    for path in (tile, rendered, info, tile, rendered, info):  # twice on one connection: replayed
        assert client.get(path)[0] == 200
    assert _size(client.get(rendered)[2]) == (WIDTH, HEIGHT)
    _export(export, open="public", stele="restricted", vault="internal", later="restricted")
    status, _, body = client.get(tile)
    assert status == 401, body
    status, headers, body = client.get(rendered)
    assert status == 200 and _size(body) == (1000, 750) and headers["cache-control"].startswith("private")
    assert client.get(info)[0] == 302  # to the preview tier
    assert json.loads(client.get(info.replace(".tif/", ".tif~preview/"))[2])["maxWidth"] == 1000
    other = Client(server[0])  # another connection, possibly the other worker
    try:
        assert other.get(tile)[0] == 401
    finally:
        other.connection.close()
    _export(export, open="public", stele="restricted", vault="internal", later="internal")
    assert client.get(rendered)[0] == 404
    _export(export, open="public", stele="restricted", vault="internal", later="public")
    assert client.get(tile)[0] == 200


# -- in-process: the level map -----------------------------------------------------


def _map(images: Path, export: Path, clock: list[float] | None = None, **settings: object) -> LevelMap:
    access = AccessSettings(**settings)  # type: ignore[arg-type]
    ticks = clock if clock is not None else [0.0]
    return LevelMap(access, export, Settings().manifests.columns, FileSource(images, (".tif",)), lambda: ticks[0])


def test_the_most_restrictive_level_wins_and_unknown_values_hide(images: Path, tmp_path: Path) -> None:
    export = tmp_path / "collection.csv"
    export.write_text(
        HEADER
        + "A,a,public,open.tif;stele.tif\n"
        + "B,b,restricted,stele\n"  # the same file, spelt without its extension
        + "C,c,Internal,vault.tif\n"  # values are compared lower-cased
        + "D,d,secrett,later.tif\n"  # a typo: hidden, never open
        + "E,e,public,later.tif\n"
        + "F,f,restricted,not-yet.tif\n",
        encoding="utf-8",
    )
    levels = _map(images, export)
    source = FileSource(images, (".tif",))
    assert levels.level(source.locate("open.tif")) == "public"
    assert levels.level(source.locate("stele.tif")) == "restricted"
    assert levels.level(source.locate("vault.tif")) == "internal"
    assert levels.level(source.locate("later")) == "secrett"
    policy = TieredPolicy(AccessSettings(), levels)
    assert policy.decide(source.locate("open.tif")) is ALLOWED
    assert policy.decide(source.locate("stele.tif")) == Degraded(1000)
    assert policy.decide(source.locate("later.tif")) == Denied("no such image", conceal=True)
    assert policy.decide(source.locate("stele.tif"), frozenset({"restricted"})) is ALLOWED  # an authorised client
    (images.parent / "loose").mkdir(exist_ok=True)
    save_pyramid(make_pattern(300, 200), images.parent / "loose" / "not-yet.tif")
    arrived = FileSource(images.parent / "loose", (".tif",)).locate("not-yet.tif")
    assert levels.level(arrived) == "restricted"  # named while missing: matched by name


def test_default_level_and_the_check_interval(images: Path, tmp_path: Path) -> None:
    export = tmp_path / "collection.csv"
    _export(export, stele="restricted")
    clock = [100.0]
    levels = _map(images, export, clock, check_interval=1.0, default_level="internal")
    source = FileSource(images, (".tif",))
    assert levels.level(source.locate("open.tif")) == "internal"  # named by no record
    _export(export, stele="restricted", open="public")
    clock[0] += 0.5
    assert not levels.stale()
    assert levels.level(source.locate("open.tif")) == "internal"  # the bound: until the next check
    clock[0] += 0.6
    assert levels.stale()  # the event loop moves this request to a thread, which re-reads the export
    assert levels.level(source.locate("open.tif")) == "public"
    assert not levels.stale()
    export.write_bytes(b"\xff\xfe not utf-8")  # a broken export keeps the last levels
    clock[0] += 2
    assert levels.level(source.locate("stele.tif")) == "restricted"
    export.unlink()  # so does a missing one (an unmounted share)
    clock[0] += 2
    assert levels.level(source.locate("stele.tif")) == "restricted"


def test_access_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="default_level 'secret' is not one of the levels"):
        Settings().replace(access={"default_level": "secret"})
    with pytest.raises(ConfigError, match=r"access\.levels"):
        Settings().replace(access={"levels": {"public": "everything"}})
    with pytest.raises(ConfigError, match="lower case"):
        Settings().replace(access={"levels": {"Public": "open"}, "default_level": "Public"})


def test_between_checks_no_stat_is_made(images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between checks a decision is a clock read and a dict lookup (the public hot path)."""
    export = tmp_path / "collection.csv"
    _export(export, stele="restricted")
    stats: list[Path] = []
    real = levels_module.export_stamp
    monkeypatch.setattr(levels_module, "export_stamp", lambda path: stats.append(path) or real(path))
    clock = [0.0]
    levels = _map(images, export, clock, check_interval=1.0)
    located = FileSource(images, (".tif",)).locate("stele.tif")
    for _ in range(100):
        assert levels.level(located) == "restricted"
    assert len(stats) == 2  # the first check, and the read's second look at the file
    clock[0] += 1.0
    levels.level(located)
    assert len(stats) == 3


@pytest.mark.parametrize(
    ("region", "size", "allowed"),
    [
        ((0, 0, 4000, 3000), (1000, 750), True),  # the degraded view itself
        ((0, 0, 4001, 3001), (1000, 750), True),  # a derived side rounded
        ((0, 0, 4000, 3000), (1001, 751), False),
        ((3072, 2048, 929, 952), (233, 238), True),  # an edge tile of scale factor 4, sides rounded up
        ((0, 0, 1024, 1024), (512, 512), False),  # scale factor 2
        ((0, 0, 4, 4), (1, 1), True),  # one degraded pixel
        ((0, 0, 1, 1), (1, 1), False),  # one source pixel: never, whatever the rounding
        ((0, 0, 6, 6), (2, 2), True),  # 1.5 degraded pixels, rounded half up: a third sharper at most
        ((0, 0, 5, 5), (2, 2), False),  # 1.25 degraded pixels: no rounding up below 4
        ((0, 0, 3, 4000), (1, 1000), False),  # a column narrower than a degraded pixel
    ],
)
def test_within_degraded(region: tuple[int, int, int, int], size: tuple[int, int], allowed: bool) -> None:
    resolved = Resolved(region, size, size)
    assert within_degraded(resolved, 4000, 3000, 1000) is allowed
