"""The ``iiif-server`` command end to end: real gunicorn processes, real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pyvips

from iiif_server.check import free_port, running_server
from iiif_server.demo import DEMO_IMAGES
from tests.conftest import demo_env


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, dict(response.headers), response.read()


def test_serve_runs_under_gunicorn(image_root: Path) -> None:
    with running_server(["serve", "--images", str(image_root), "--workers", "1"], free_port()) as base:
        status, headers, body = _get(f"{base}/iiif/3/pattern.tif/0,0,256,256/256,/0/default.jpg")
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        assert headers["Server"].startswith("gunicorn")
        image = pyvips.Image.new_from_buffer(body, "")
        assert (image.width, image.height) == (256, 256)
        # a corrupt file fails alone; the worker keeps serving
        try:
            _get(f"{base}/iiif/3/corrupt.jpg/full/max/0/default.jpg")
        except urllib.error.HTTPError as error:
            assert error.code == 422
        assert _get(f"{base}/iiif/3/pattern.png/full/100,/0/default.png")[0] == 200


def test_demo_serves_images_and_manifests_without_rebuilding(demo_root: Path, tmp_path: Path) -> None:
    stamp = {p: p.stat().st_mtime_ns for p in demo_root.rglob("*") if p.is_file()}
    env = demo_env(demo_root, tmp_path / "state")
    with running_server(["demo", "--workers", "1"], free_port(), env=env) as base:
        page = _get(base + "/")[2].decode()
        for name in DEMO_IMAGES:
            assert f"/iiif/3/{quote(name, safe='')}/info.json" in page
        info = json.loads(_get(f"{base}/iiif/3/trong-dong-ngoc-lu.tif/info.json")[2])
        assert info["width"] >= 10000 and info["height"] >= 8000
        assert info["tiles"][0]["width"] == 256
        jar = json.loads(_get(f"{base}/iiif/3/gom-chu-dau.jpg/info.json")[2])
        assert jar["tiles"][0]["width"] == 512  # a plain JPEG: the default tile size
        manifest = json.loads(_get(f"{base}/iiif/manifests/KH-HV-0001")[2])
        assert manifest["label"]["vi"] == ["Trống đồng Ngọc Lũ"]
        assert manifest["items"][0]["width"] == info["width"]
        top = json.loads(_get(f"{base}/iiif/collections/top")[2])
        assert top["type"] == "Collection" and top["items"]
    drum = pyvips.Image.new_from_file(str(demo_root / "trong-dong-ngoc-lu.tif"))
    assert drum.get("n-pages") > 5 and drum.get("tile-width") == 256  # a real pyramid
    seal = pyvips.Image.new_from_file(str(demo_root / "an-ngoc.png"))
    assert seal.hasalpha()
    subfolders = [name for name in DEMO_IMAGES if "/" in name and " " in name.split("/")[0]]
    assert subfolders and any(not folder.isascii() for folder in subfolders)
    assert {p: p.stat().st_mtime_ns for p in demo_root.rglob("*") if p.is_file()} == stamp  # never rebuilt


def test_invalid_configuration_stops_with_the_key_named(tmp_path: Path) -> None:
    env = {**os.environ, "IIIF_SERVER_CONFIG": os.devnull, "IIIF_SERVER_SERVER_PORT": "eighty"}
    result = subprocess.run(
        [sys.executable, "-m", "iiif_server", "serve", "--images", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "server.port" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_image_root_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "IIIF_SERVER_CONFIG": os.devnull}
    result = subprocess.run(
        [sys.executable, "-m", "iiif_server", "serve", "--images", str(tmp_path / "none")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "not a folder" in result.stderr
