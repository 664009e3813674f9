"""Masters in an S3-compatible bucket (issue 14), over real HTTP: SeaweedFS + `iiif-server serve`.

The server reads the bucket through boto3 with credentials from the environment, never a whole
master: info.json, pass-through tiles (the stored bytes, one ranged GET each), rendered regions and
`full/1024,` through the chunk cache; a replaced object is a new ETag everywhere. The store's bytes
are counted by the server's own metrics (``iiif_store_bytes``) and compared with the master's size;
the figures are printed (``-s``) for docs/performance.md.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import pyvips

from iiif_server.check import free_port, running_server
from iiif_server.image.passthrough import open_reader
from tests.access_site import get
from tests.conftest import block_colour, decode, make_pattern, pixel
from tests.presentation.conftest import write_export
from tests.s3_store import S3Store, s3_store  # noqa: F401

PREFIX = "masters/"
PATTERN = "scans/pattern.tif"  # 4000 × 3000, JPEG tiles of 256: pixels known from block_colour
PHOTO = "scans/ảnh-chụp.tif"  # 6000 × 4000 with noise: JPEG tiles of a real scan's size, for the figures
FRESH = "scans/fresh.tif"  # the same bytes, read by nothing before the figures of renders
RECORD = ["KH-S3-0001", "Bình gốm", "Jar", "hiện vật", "", "1793", "", "gốm", "", "Kho", "", "", "public",
          "http://creativecommons.org/publicdomain/mark/1.0/", "", "", f"{PATTERN};{PHOTO}"]  # fmt: skip
HEAD_SECONDS = 0.5
TOLERANCE = 12  # JPEG at Q 90, resampled


def _jpeg_pyramid(image: pyvips.Image, path: Path) -> bytes:
    image.tiffsave(str(path), tile=True, pyramid=True, compression="jpeg", Q=90, tile_width=256, tile_height=256)
    return path.read_bytes()


@pytest.fixture(scope="module")
def masters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("s3-masters")
    _jpeg_pyramid(make_pattern(4000, 3000), folder / "pattern.tif")
    noise = pyvips.Image.gaussnoise(6000, 4000, sigma=40).bandjoin([pyvips.Image.gaussnoise(6000, 4000)] * 2)
    photo = (make_pattern(6000, 4000).cast("float") * 0.6 + noise * 0.4).cast("uchar").copy(interpretation="srgb")
    _jpeg_pyramid(photo, folder / "photo.tif")
    inverted = (make_pattern(4000, 3000).invert()).copy(interpretation="srgb")
    _jpeg_pyramid(inverted, folder / "inverted.tif")
    return {"pattern": folder / "pattern.tif", "photo": folder / "photo.tif", "inverted": folder / "inverted.tif"}


@pytest.fixture(scope="module")
def site(s3_store: S3Store, masters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: F811
    client = s3_store.client()
    client.put_object(Bucket=s3_store.bucket, Key=PREFIX + PATTERN, Body=masters["pattern"].read_bytes())
    client.put_object(Bucket=s3_store.bucket, Key=PREFIX + PHOTO, Body=masters["photo"].read_bytes())
    client.put_object(Bucket=s3_store.bucket, Key=PREFIX + FRESH, Body=masters["photo"].read_bytes())
    client.put_object(Bucket=s3_store.bucket, Key=PREFIX + "scans/replaced.tif", Body=masters["pattern"].read_bytes())
    state = tmp_path_factory.mktemp("s3-state")
    env = {
        **s3_store.env,
        "IIIF_SERVER_S3_PREFIX": PREFIX,
        "IIIF_SERVER_S3_CACHE_DIR": str(state / "chunks"),
        "IIIF_SERVER_S3_HEAD_SECONDS": str(HEAD_SECONDS),
        "IIIF_SERVER_S3_CHUNK_MB": os.environ.get("S3_TEST_CHUNK_MB", "1"),  # other sizes: figures only
        "IIIF_SERVER_IMAGES_ROOT": str(state / "no-images-here"),  # nothing is read from disk
        "IIIF_SERVER_MANIFESTS_SOURCE": str(write_export(state / "export.csv", [RECORD])),
        "IIIF_SERVER_MANIFESTS_STATE_DIR": str(state / "manifests"),
        "IIIF_SERVER_ACCESS_STATE_DIR": str(state / "access"),
    }
    with running_server(["serve", "--workers", "1"], free_port(), env, log=state / "server.log") as base:
        yield base


def _url(identifier: str, tail: str) -> str:
    return f"/iiif/3/{quote(identifier, safe='')}/{tail}"


def _store_counters(base: str) -> tuple[float, float]:
    """(ranged GETs, bytes) the server has read from the store so far, from its own /metrics."""
    status, _, body = get(base, "/metrics")
    assert status == 200
    text = body.decode()
    gets = re.search(r'^iiif_store_requests_total\{kind="get"\} (\S+)$', text, re.M)
    fetched = re.search(r"^iiif_store_bytes_total (\S+)$", text, re.M)
    return (float(gets.group(1)) if gets else 0.0), (float(fetched.group(1)) if fetched else 0.0)


def _fetched(base: str, path: str) -> tuple[int, dict[str, str], bytes, int, int]:
    """GET ``path``; also the store's GETs and bytes it cost."""
    gets, before = _store_counters(base)
    status, headers, body = get(base, path)
    gets_after, after = _store_counters(base)
    return status, headers, body, int(gets_after - gets), int(after - before)


def test_info_json_comes_from_the_bucket(site: str) -> None:
    status, headers, body = get(site, _url(PATTERN, "info.json"))
    assert status == 200, body
    info = json.loads(body)
    assert (info["width"], info["height"]) == (4000, 3000)
    assert info["id"].endswith("/iiif/3/" + quote(PATTERN, safe=""))
    assert info["tiles"][0]["width"] == 256
    assert headers["etag"]


def test_a_passthrough_tile_is_the_stored_bytes_in_one_ranged_get(site: str, masters: dict[str, Path]) -> None:
    local = open_reader(masters["pattern"])
    assert local is not None
    level = local.level(0)
    assert level is not None
    get(site, _url(PATTERN, "info.json"))  # the layout: probed through the chunk cache
    status, headers, first, gets, fetched = _fetched(site, _url(PATTERN, "0,0,256,256/256,/0/default.jpg"))
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert first == local.jpeg(level, 0, 0)  # the file's own stored tile, byte for byte
    assert fetched <= len(first)  # a small master: its structure and this tile were in chunks already
    local.close()
    # A scan's size: the first tile of the file reads the TIFF structure (through the chunk cache),
    # every other tile exactly its stored bytes in one ranged GET.
    photo = open_reader(masters["photo"])
    assert photo is not None
    level = photo.level(0)
    assert level is not None
    get(site, _url(PHOTO, "info.json"))
    status, _, first, gets, fetched = _fetched(site, _url(PHOTO, "1024,512,256,256/256,/0/default.jpg"))
    assert status == 200 and first == photo.jpeg(level, 4, 2)
    structure, structure_gets = fetched, gets
    sizes = []
    for col, row in ((20, 10), (21, 10), (5, 14)):
        status, _, tile, gets, fetched = _fetched(
            site, _url(PHOTO, f"{col * 256},{row * 256},256,256/256,/0/default.jpg")
        )
        stored = len(tile) - len(level._prefix) + 2  # the stored stream, before its tables and marker are added
        assert status == 200 and tile == photo.jpeg(level, col, row)
        assert gets == 1 and fetched == stored < 2 * len(tile)
        sizes.append(stored)
    status, _, again, gets, fetched = _fetched(site, _url(PHOTO, "5120,2560,256,256/256,/0/default.jpg"))
    assert status == 200 and again == photo.jpeg(level, 20, 10)
    assert (gets, fetched) == (0, 0)  # read once, then from the caches: a GET costs more than a lookup
    photo.close()
    print(
        f"\npass-through tiles of a {masters['photo'].stat().st_size}-byte master: {sizes} bytes, one GET each;"
        f" the file's first tile {structure} bytes in {structure_gets} GETs (TIFF structure + tile)"
    )


def test_rendered_region_and_full_1024_read_ranges_not_the_master(site: str, masters: dict[str, Path]) -> None:
    status, _, body, _, _ = _fetched(site, _url(PATTERN, "100,100,800,600/400,/0/default.png"))
    assert status == 200, body
    image = decode(body)
    assert (image.width, image.height) == (400, 300)
    block = 100  # tests.conftest BLOCK
    for x, y in ((20, 20), (220, 120), (380, 280)):
        sx, sy = 100 + x * 2, 100 + y * 2  # blocks of the pattern's first 10 × 8 (no colour overflows)
        expected = block_colour(sx // block, sy // block)
        assert all(abs(a - b) <= TOLERANCE for a, b in zip(pixel(image, x, y), expected, strict=True)), (x, y)
    size = masters["photo"].stat().st_size
    figures = []
    for tail in ("info.json", "full/1024,/0/default.jpg", "2048,1024,512,512/512,/0/default.jpg"):
        status, _, body, gets, fetched = _fetched(site, _url(FRESH, tail))
        assert status == 200, body
        figures.append((tail, gets, fetched))
    assert decode(body).width == 512
    opened = figures[0][2] + figures[1][2]  # the structure of every level, then full/1024, from a small level
    assert 0 < opened < size / 4
    assert 0 < figures[2][2] < size / 8  # a region at full resolution: the chunks of its tiles only
    print(
        f"\nmaster of {size} bytes, read from the store: "
        + "; ".join(f"{t}: {f} bytes in {g} GETs" for t, g, f in figures)
    )


def test_missing_keys_are_404_and_escapes_400(site: str) -> None:
    status, _, body = get(site, _url("scans/none.tif", "info.json"))
    assert (status, body.strip()) == (404, b"no image 'scans/none.tif'")
    status, _, body = get(site, _url("scans/../pattern.tif", "info.json"))
    assert status == 400 and b"not a valid image path" in body
    status, _, _ = get(site, _url(".hidden/pattern.tif", "info.json"))
    assert status == 400


def test_a_replaced_object_is_never_served_stale(site: str, s3_store: S3Store, masters: dict[str, Path]) -> None:  # noqa: F811
    tile = _url("scans/replaced.tif", "0,0,256,256/256,/0/default.jpg")  # passed through
    render = _url("scans/replaced.tif", "0,0,1000,1000/100,/0/default.png")  # rendered, cached in memory
    status, headers, old, _, _ = _fetched(site, tile)
    assert status == 200
    _, render_headers, old_render = get(site, render)
    assert pixel(decode(old), 10, 10)[0] < 40  # block (0, 0): red 5
    assert pixel(decode(old_render), 5, 5)[0] < 40
    body = masters["inverted"].read_bytes()
    s3_store.client().put_object(Bucket=s3_store.bucket, Key=PREFIX + "scans/replaced.tif", Body=body)
    time.sleep(HEAD_SECONDS + 0.2)
    status, new_headers, new, _, _ = _fetched(site, tile)
    assert status == 200
    assert new_headers["etag"] != headers["etag"]
    assert pixel(decode(new), 10, 10)[0] > 215  # inverted: 250
    _, new_render_headers, new_render = get(site, render)
    assert new_render_headers["etag"] != render_headers["etag"]
    assert pixel(decode(new_render), 5, 5)[0] > 215


def test_a_large_gif_renders_in_its_child_process_from_the_bucket(site: str) -> None:
    """A GIF over 0.5 MP renders in a spawned process (image/isolated.py): the object goes with it."""
    status, headers, body = get(site, _url(PATTERN, "0,0,1000,800/1000,/0/default.gif"))
    assert status == 200 and headers["content-type"] == "image/gif", body
    image = decode(body)
    assert image.width == 1000
    assert all(abs(a - b) <= 40 for a, b in zip(pixel(image, 150, 250)[:3], block_colour(1, 2), strict=True))


def test_keys_are_checked_like_paths_and_misses_remembered(s3_store: S3Store) -> None:  # noqa: F811
    from iiif_server.errors import InvalidRequest, NotFound
    from iiif_server.image.s3 import S3Config, S3Source, S3Store

    store = S3Store(S3Config(s3_store.bucket, PREFIX, s3_store.endpoint_url, "us-east-1"))
    store._client = s3_store.client()  # the fixture's credentials, not this process's environment
    source = S3Source(store, (".tif",), head_seconds=60, miss_seconds=60)
    for bad in ("/scans/x.tif", "scans/../x.tif", "scans\\x.tif", "scans/x\x00.tif", ".git/config", "scans//x.tif"):
        with pytest.raises(InvalidRequest):
            source.locate(bad)
    assert store.requests == 0  # refused before the store is asked
    with pytest.raises(NotFound):
        source.locate("scans/none")
    asked = store.requests
    assert asked == 1  # one LIST of "scans/none." for a name without an extension
    with pytest.raises(NotFound):
        source.locate("scans/none")
    assert store.requests == asked  # remembered
    s3_store.client().put_object(Bucket=s3_store.bucket, Key=PREFIX + "scans/x.txt", Body=b"not an image")
    with pytest.raises(NotFound):
        source.locate("scans/x.txt")  # only allowed extensions are images
    with pytest.raises(NotFound):
        source.locate("scans/x")
    s3_store.client().put_object(Bucket=s3_store.bucket, Key=PREFIX + "scans/x.TIF", Body=b"an image")
    found = source.locate("scans/x.TIF")
    assert found.path == f"s3://{s3_store.bucket}/{PREFIX}scans/x.TIF" and found.size == 8
    source = S3Source(store, (".tif",), head_seconds=60, miss_seconds=60)  # forgets the miss of "scans/x"
    asked = store.requests
    assert source.locate("scans/x").path.endswith("scans/x.TIF")  # the extension may be left out, in any case
    assert store.requests == asked + 1


def test_readiness_asks_the_bucket(site: str) -> None:
    status, _, body = get(site, "/health/ready")
    assert status == 200 and json.loads(body)["checks"]["images"] == "ok", body


def test_manifests_are_built_from_the_bucket(site: str) -> None:
    """The export names keys; the build sizes each image from the bucket (a header read, no pixels)."""
    status, _, body = get(site, "/iiif/manifests/KH-S3-0001")
    assert status == 200, body
    manifest = json.loads(body)
    canvases = manifest["items"]
    assert [(c["width"], c["height"]) for c in canvases] == [(4000, 3000), (6000, 4000)]
    service = canvases[0]["items"][0]["items"][0]["body"]["service"][0]
    assert service["id"].endswith("/iiif/3/" + quote(PATTERN, safe=""))


def test_a_store_that_refuses_the_credentials_is_not_ready(s3_store: S3Store, tmp_path: Path) -> None:  # noqa: F811
    env = {
        **s3_store.env,
        "AWS_SECRET_ACCESS_KEY": "not-the-secret",
        "IIIF_SERVER_S3_CACHE_DIR": str(tmp_path / "chunks"),
        "IIIF_SERVER_MANIFESTS_SOURCE": str(tmp_path / "none.csv"),
        "IIIF_SERVER_MANIFESTS_STATE_DIR": str(tmp_path / "manifests"),
        "IIIF_SERVER_ACCESS_STATE_DIR": str(tmp_path / "access"),
        "IIIF_SERVER_S3_RETRIES": "0",
    }
    with running_server(["serve", "--workers", "1"], free_port(), env, log=tmp_path / "server.log") as base:
        status, _, body = get(base, "/health/ready")
        assert status == 503 and json.loads(body)["checks"]["images"] == "image store not reachable"
        status, _, body = get(base, _url(PATTERN, "info.json"))
        assert status in (404, 503) and len(body.splitlines()) == 1  # never a 500


def test_a_store_that_does_not_answer_is_a_503_with_retry_after(s3_store: S3Store, tmp_path: Path) -> None:  # noqa: F811
    env = {
        **s3_store.env,
        "IIIF_SERVER_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "IIIF_SERVER_S3_CACHE_DIR": str(tmp_path / "chunks"),
        "IIIF_SERVER_MANIFESTS_SOURCE": str(tmp_path / "none.csv"),
        "IIIF_SERVER_MANIFESTS_STATE_DIR": str(tmp_path / "manifests"),
        "IIIF_SERVER_ACCESS_STATE_DIR": str(tmp_path / "access"),
        "IIIF_SERVER_S3_RETRIES": "0",
    }
    with running_server(["serve", "--workers", "1"], free_port(), env, log=tmp_path / "server.log") as base:
        status, headers, body = get(base, _url(PATTERN, "0,0,256,256/256,/0/default.jpg"))
        assert status == 503 and headers["retry-after"] == "5"
        assert body.strip() == b"the image store did not answer; try again later"


def test_answers_from_the_bucket_are_replayed_by_the_edge_until_the_object_changes(
    s3_store: S3Store,  # noqa: F811
    masters: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hot tile or info.json of an object is sent again by the ASGI edge without the stack, as a
    file's is; the object's version is the one located within ``head_seconds``, so a replaced object
    is asked of the store (on a thread) and served new, never replayed stale."""
    from iiif_server.app import create_app
    from iiif_server.asgi import ASGIEdge
    from iiif_server.config import load_settings
    from tests.test_asgi import Recorder, _request, _scope

    key = PREFIX + "scans/replayed.tif"
    s3_store.client().put_object(Bucket=s3_store.bucket, Key=key, Body=masters["pattern"].read_bytes())
    for name, value in s3_store.env.items():
        monkeypatch.setenv(name, value)  # boto3's credential chain, in this process
    settings = load_settings(
        environ={
            **s3_store.env,
            "IIIF_SERVER_S3_PREFIX": PREFIX,
            "IIIF_SERVER_S3_HEAD_SECONDS": str(HEAD_SECONDS),
            "IIIF_SERVER_S3_CACHE_DIR": str(tmp_path / "chunks"),
            "IIIF_SERVER_IMAGES_ROOT": str(tmp_path / "no-images-here"),
            "IIIF_SERVER_CACHE_DISK_DIR": str(tmp_path / "cache"),
            "IIIF_SERVER_MANIFESTS_SOURCE": str(tmp_path / "no-export.csv"),
            "IIIF_SERVER_MANIFESTS_STATE_DIR": str(tmp_path / "state"),
            "IIIF_SERVER_SERVER_ACCESS_LOG": "off",
        }
    )
    app = create_app(settings)
    recorder = Recorder(app)
    edge = ASGIEdge(
        recorder, threads=2, replay=app.extensions["iiif_replay"], record=app.extensions["iiif_observed"].record
    )
    tile, info = "/iiif/3/scans/replayed.tif/0,0,256,256/256,/0/default.jpg", "/iiif/3/scans/replayed.tif/info.json"
    for path in (tile, info):  # as ASGI gives them: percent-decoded
        first = _request(edge, _scope(path))  # a HEAD and a ranged GET, on a thread
        second = _request(edge, _scope(path))  # from memory, on the loop: kept
        recorder.calls.clear()
        third = _request(edge, _scope(path))
        assert recorder.calls == []  # replayed: nothing below the edge ran
        assert first[0] == second[0] == third[0] == 200 and first[2] == second[2] == third[2]
    old = _request(edge, _scope(tile))
    s3_store.client().put_object(Bucket=s3_store.bucket, Key=key, Body=masters["inverted"].read_bytes())
    time.sleep(HEAD_SECONDS + 0.2)
    recorder.calls.clear()
    new = _request(edge, _scope(tile))
    assert recorder.calls  # the version was too old to trust: the stack asked the store
    assert new[0] == 200 and new[1][b"etag"] != old[1][b"etag"]
    assert pixel(decode(old[2]), 10, 10)[0] < 40 and pixel(decode(new[2]), 10, 10)[0] > 215
