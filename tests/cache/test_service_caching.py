"""Caching seen from HTTP: shared across workers and hosts, never stale, purgeable."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from flask import Flask

from iiif_server import create_app
from iiif_server.config import Settings
from tests.cache.conftest import RedisProcess
from tests.conftest import decode, make_pattern, pixel

TILE = "/iiif/3/pic.tif/0,0,256,256/256,/0/default.png"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    make_pattern(1000, 800).tiffsave(str(folder / "pic.tif"), tile=True, pyramid=True, compression="deflate")
    return folder


def _app(settings: Settings, root: Path, **cache: object) -> Flask:
    return create_app(settings.replace(images={"root": root}, cache=cache))


def _forbid_rendering(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> bytes:
        raise AssertionError("rendered again")

    monkeypatch.setattr(app.extensions["iiif_server"].renderer, "render", refuse)


def test_second_host_serves_a_tile_rendered_by_the_first(
    settings: Settings, root: Path, redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two apps (two workers, or two hosts) share only Redis."""
    first = _app(settings, root, redis_url=redis_url, redis_prefix=prefix, disk_max_mb=0)
    second = _app(settings, root, redis_url=redis_url, redis_prefix=prefix, disk_max_mb=0)
    rendered = first.test_client().get(TILE)
    assert rendered.status_code == 200
    _forbid_rendering(second, monkeypatch)
    served = second.test_client().get(TILE)
    assert served.status_code == 200
    assert served.data == rendered.data
    assert served.headers["ETag"] == rendered.headers["ETag"]


def test_workers_share_the_disk_tier(
    settings: Settings, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _app(settings, root, disk_dir=tmp_path / "c")
    second = _app(settings, root, disk_dir=tmp_path / "c")
    rendered = first.test_client().get(TILE).data
    _forbid_rendering(second, monkeypatch)
    assert second.test_client().get(TILE).data == rendered


@pytest.mark.parametrize("tier", ["disk", "redis"])
def test_a_replaced_master_is_never_served_stale(
    settings: Settings, root: Path, tmp_path: Path, tier: str, request: pytest.FixtureRequest
) -> None:
    cache: dict[str, object] = {"disk_dir": tmp_path / "c"}
    if tier == "redis":
        cache = {"redis_url": request.getfixturevalue("redis_url"), "redis_prefix": request.getfixturevalue("prefix")}
    app = _app(settings, root, **cache)
    client = app.test_client()
    before = client.get(TILE)
    info_before = client.get("/iiif/3/pic.tif/info.json").get_json()
    replacement = make_pattern(1200, 900).invert()
    replacement.tiffsave(str(root / "new.tif"), tile=True, pyramid=True, compression="deflate")
    os.replace(root / "new.tif", root / "pic.tif")  # a new master, as ingest will write it
    after = client.get(TILE)
    assert after.headers["ETag"] != before.headers["ETag"]
    assert pixel(decode(after.data), 10, 10) == tuple(255 - v for v in pixel(decode(before.data), 10, 10))
    assert client.get("/iiif/3/pic.tif/info.json").get_json()["width"] == 1200 != info_before["width"]


def test_info_json_is_served_from_cache(
    settings: Settings, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app(settings, root, disk_dir=tmp_path / "c")
    client = app.test_client()
    first = client.get("/iiif/3/pic.tif/info.json").data
    from iiif_server.image import info as info_module

    monkeypatch.setattr(info_module, "build_info", lambda *a, **k: pytest.fail("info.json rebuilt"))
    assert client.get("/iiif/3/pic.tif/info.json").data == first
    monkeypatch.undo()
    other_host = client.get("/iiif/3/pic.tif/info.json", headers={"Host": "other.example"})
    assert other_host.get_json()["id"] == "http://other.example/iiif/3/pic.tif"  # a base URL is part of the key


def test_admin_purge(settings: Settings, root: Path, tmp_path: Path) -> None:
    app = create_app(
        settings.replace(images={"root": root}, cache={"disk_dir": tmp_path / "c"}, admin={"token": "s3cret"})
    )
    client = app.test_client()
    client.get(TILE)
    assert client.post("/admin/cache/purge/pic.tif").status_code == 401
    assert client.post("/admin/cache/purge/pic.tif", headers={"Authorization": "Bearer wrong"}).status_code == 401
    response = client.post("/admin/cache/purge/pic.tif", headers={"Authorization": "Bearer s3cret"})
    assert response.status_code == 200 and response.get_json()["purged"] >= 1
    assert not any(p.is_file() and not p.name.startswith(".") for p in (tmp_path / "c").rglob("*"))
    everything = client.post("/admin/cache/purge", headers={"Authorization": "Bearer s3cret"})
    assert everything.status_code == 200


def test_admin_is_off_without_a_token(client: object) -> None:
    assert client.post("/admin/cache/purge").status_code == 404  # type: ignore[attr-defined]


def test_cli_purge(settings: Settings, root: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "c"
    app = _app(settings, root, disk_dir=cache_dir)
    app.test_client().get(TILE)
    assert any(p.is_file() for p in cache_dir.rglob("*"))
    env = {**os.environ, "IIIF_SERVER_CONFIG": os.devnull, "IIIF_SERVER_CACHE_DISK_DIR": str(cache_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "iiif_server", "cache", "purge", "pic.tif"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "purged" in result.stdout
    assert not any(p.is_file() and not p.name.startswith(".") for p in cache_dir.rglob("*"))


def test_redis_outage_mid_load_serves_uncached_and_recovers(
    settings: Settings, root: Path, private_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    app = _app(settings, root, redis_url=private_redis.url, redis_timeout=0.2, disk_max_mb=0, memory_mb=0)
    client = app.test_client()
    urls = [f"/iiif/3/pic.tif/{x * 100},0,100,100/50,/0/default.jpg" for x in range(8)]
    first = [client.get(url).data for url in urls]
    private_redis.stop()
    with caplog.at_level(logging.WARNING, logger="iiif_server.cache.redis"):
        during = [client.get(url) for url in urls * 3]
        assert all(response.status_code == 200 for response in during)
        assert [response.data for response in during[:8]] == first  # rendered again, same bytes
        assert sum("unavailable" in record.getMessage() for record in caplog.records) == 1
        private_redis.start()
        time.sleep(2.5)  # the outage back-off
        client.get(urls[0])
        with redis.Redis.from_url(private_redis.url) as check:
            assert check.dbsize() > 0  # caching again
