"""The ``iiif-server`` command end to end: real gunicorn processes, real HTTP."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from email.message import Message
from pathlib import Path
from urllib.parse import quote

import pytest
import pyvips

from iiif_server.check import free_port, running_server
from iiif_server.demo import DEMO_IMAGES
from tests.conftest import demo_env

REPO = Path(__file__).resolve().parent.parent
FIRST_RUN = 900.0  # seconds: synthesising the demo images takes ~20 s alone, minutes on a busy machine


def _get(url: str) -> tuple[int, Message, bytes]:
    """Status, headers (looked up case-insensitively, as HTTP names are) and body."""
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.headers, response.read()


def test_serve_runs_under_gunicorn(image_root: Path, tmp_path: Path) -> None:
    home, log = tmp_path / "home", tmp_path / "server.log"
    home.mkdir()
    args = ["serve", "--images", str(image_root), "--workers", "1"]
    with running_server(args, free_port(), env={"HOME": str(home)}, log=log) as base:
        status, headers, body = _get(f"{base}/iiif/3/pattern.tif/0,0,256,256/256,/0/default.jpg")
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        image = pyvips.Image.new_from_buffer(body, "")
        assert (image.width, image.height) == (256, 256)
        # a corrupt file fails alone; the worker keeps serving
        try:
            _get(f"{base}/iiif/3/corrupt.jpg/full/max/0/default.jpg")
        except urllib.error.HTTPError as error:
            assert error.code == 422
        assert _get(f"{base}/iiif/3/pattern.png/full/100,/0/default.png")[0] == 200
    text = log.read_text()
    assert "Starting gunicorn" in text and "Using worker: iiif_server.asgi.Worker" in text  # the default worker
    # no management socket left in the user's home (gunicorn 27 opens one by default)
    assert "Control socket" not in text and list(home.iterdir()) == []


def test_demo_serves_images_and_manifests_without_rebuilding(demo_root: Path, tmp_path: Path) -> None:
    stamp = {p: p.stat().st_mtime_ns for p in demo_root.rglob("*") if p.is_file()}
    env = demo_env(demo_root, tmp_path / "state")
    with running_server(["demo", "--workers", "1"], free_port(), env=env) as base:
        page = _get(base + "/status")[2].decode()  # the operators' table (/ is the public catalogue)
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


def _manifests_under(url: str) -> set[str]:
    """Every Manifest id reachable from a Collection, following its sub-collections."""
    found: set[str] = set()
    for item in json.loads(_get(url)[2])["items"]:
        found |= {item["id"]} if item["type"] == "Manifest" else _manifests_under(item["id"])
    return found


def _assert_first_demo_run_serves(base: str, folder: Path) -> None:
    """Thumbnails, unaligned regions and the demo collection answer on a first run in ``folder``."""
    photo = "/iiif/3/" + quote("le-hoi/02.jpg", safe="")
    info = json.loads(_get(f"{base}{photo}/info.json")[2])
    status, headers, body = _get(f"{base}{photo}/full/!200,200/0/default.jpg")  # not a tile: a real render
    thumbnail = pyvips.Image.new_from_buffer(body, "")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert thumbnail.width == 200 and abs(thumbnail.height - 200 * info["height"] / info["width"]) <= 1
    region = pyvips.Image.new_from_buffer(
        _get(f"{base}/iiif/3/trong-dong-ngoc-lu.tif/1000,900,700,500/350,/0/default.png")[2], ""
    )
    assert (region.width, region.height) == (350, 250)
    manifests = _manifests_under(f"{base}/iiif/collections/top")
    assert len(manifests) == 9 and f"{base}/iiif/manifests/KH-HV-0104" in manifests  # the restricted stele too
    status, headers, body = _get(f"{base}/")  # the public catalogue: its templates and assets are package data
    home = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html") and "Trống đồng Ngọc Lũ" in home
    stylesheet = re.search(r'href="(/assets/site/site\.[0-9a-f]{12}\.css)"', home)
    assert stylesheet and _get(base + stylesheet.group(1))[0] == 200
    assert (folder / "demo-images" / "le-hoi" / "02.jpg").is_file()
    assert (folder / "demo-images" / ".state").is_dir()  # the demo's own change history, not ./manifests/state
    assert not (folder / "manifests").exists()


@pytest.mark.slow
def test_first_demo_run_in_an_empty_folder_renders_images(tmp_path: Path) -> None:
    """Issue 9.1: on a first run, images synthesised before the fork left every worker's render hanging."""
    with running_server(["demo", "--workers", "1"], free_port(), cwd=tmp_path, start_timeout=FIRST_RUN) as base:
        _assert_first_demo_run_serves(base, tmp_path)


@pytest.mark.slow
def test_installed_package_runs_the_demo_from_any_folder(tmp_path: Path) -> None:
    """Issue 9.4: `pip install .` (not editable), then `iiif-server demo` in an empty folder publishes the demo."""
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside pyproject.toml
    shutil.copytree(REPO / "iiif_server", source / "iiif_server", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(source)],
        capture_output=True,
        text=True,
        timeout=FIRST_RUN,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    program = (str(venv / "bin" / "iiif-server"),)
    with running_server(
        ["demo", "--workers", "1"], free_port(), cwd=folder, program=program, start_timeout=FIRST_RUN
    ) as base:
        _assert_first_demo_run_serves(base, folder)
