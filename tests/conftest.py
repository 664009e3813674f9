"""Fixtures: an image root synthesised with pyvips, settings, the app and its test client.

The test pattern is a grid of 100×100 blocks whose colour encodes the block's
column and row (``block_colour``), so a test can say which pixels belong where.
Stored losslessly (deflate TIFF pyramid, PNG) pixels are exact; the JPEG copy
is checked with a tolerance.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import pyvips
from flask import Flask
from flask.testing import FlaskClient

from iiif_server import cli, create_app
from iiif_server.config import Settings
from iiif_server.demo import DEMO_IMAGES, build_demo_images
from tests.repo_guard import (  # noqa: F401  (hooks and a fixture: the tests never write into the checkout)
    pytest_sessionfinish,
    pytest_sessionstart,
    work_outside_the_repository,
)

# No per-example deadline: these machines are shared and noisy, and a test never asserts absolute time.
hypothesis.settings.register_profile("iiif", deadline=None)
hypothesis.settings.load_profile("iiif")

TESTS = Path(__file__).resolve().parent
DEMO_EXPORT = cli.DEMO_EXPORT  # the demo collection `iiif-server demo` publishes, shipped in the package
BLOCK = 100
PATTERN_W, PATTERN_H = 1000, 800  # 10 × 8 blocks
SUBFOLDER = "hiện vật"
NFC_NAME = "KH-HV-0101 mặt trước.tif"  # stored NFC
NFD_NAME = "bình gốm mặt sau.png"  # stored NFD


def block_colour(col: int, row: int) -> tuple[int, int, int]:
    """Distinct, well-separated colour of block (col, row)."""
    return (col * 25 + 5, row * 30 + 10, 250 - col * 12 - row * 8)


def make_pattern(width: int = PATTERN_W, height: int = PATTERN_H) -> pyvips.Image:
    xy = pyvips.Image.xyz(width, height)
    col = (xy[0] / BLOCK).floor()
    row = (xy[1] / BLOCK).floor()
    r = col * 25 + 5
    g = row * 30 + 10
    b = 250 - col * 12 - row * 8
    return r.bandjoin([g, b]).cast("uchar").copy(interpretation="srgb")


def save_pyramid(image: pyvips.Image, path: Path, compression: str = "deflate", tile: int = 256) -> None:
    image.tiffsave(str(path), tile=True, pyramid=True, compression=compression, tile_width=tile, tile_height=tile)


@pytest.fixture(scope="session")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("iiif")
    root = base / "images"
    root.mkdir()
    pattern = make_pattern()
    save_pyramid(pattern, root / "pattern.tif")
    pattern.tiffsave(str(root / "pattern-strip.tif"))  # plain, untiled TIFF
    pattern.pngsave(str(root / "pattern.png"))
    pattern.jpegsave(str(root / "pattern.jpg"), Q=95)
    big = make_pattern(4000, 3000)  # several pyramid levels, JPEG-compressed tiles as real masters have
    save_pyramid(big, root / "big.tif", compression="jpeg")
    # a 400×300 PNG with alpha: left half opaque red, right half fully transparent
    red = pyvips.Image.black(400, 300).new_from_image([255, 0, 0]).copy(interpretation="srgb")
    alpha = (pyvips.Image.xyz(400, 300)[0] < 200).ifthenelse(255, 0).cast("uchar")
    red.bandjoin(alpha).pngsave(str(root / "alpha.png"))
    sub = root / SUBFOLDER
    sub.mkdir()
    save_pyramid(make_pattern(600, 400), sub / unicodedata.normalize("NFC", NFC_NAME))
    make_pattern(300, 200).pngsave(str(sub / unicodedata.normalize("NFD", NFD_NAME)))
    (root / "odd name + #1.png").write_bytes((root / "alpha.png").read_bytes())
    # broken sources: each must fail alone
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    (root / "empty.png").write_bytes(b"")
    full = (root / "pattern.tif").read_bytes()
    (root / "truncated.tif").write_bytes(full[: len(full) // 3])
    (root / "notes.txt").write_text("not an image")
    # outside the root: must never be served
    outside = base / "secret.png"
    make_pattern(50, 50).pngsave(str(outside))
    os.symlink(outside, root / "escape.png")
    os.symlink(root / "pattern.png", root / "inside-link.png")
    return root


@pytest.fixture(scope="session")
def settings(image_root: Path) -> Settings:
    return Settings().replace(
        images={"root": image_root},
        server={"proxy_hops": 1, "access_log": "off"},  # in-process apps: no lines on the tests' stdout
        cache={"disk_dir": image_root.parent / "cache"},
        manifests={"source": image_root.parent / "no-export.csv", "state_dir": image_root.parent / "state"},
    )


@pytest.fixture(scope="session")
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as test_client:
        yield test_client


def decode(data: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(data, "")


def pixel(image: pyvips.Image, x: int, y: int) -> tuple[int, ...]:
    return tuple(int(v) for v in image(x, y))


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo images, synthesised once per test session (about 15 s)."""
    root = tmp_path_factory.mktemp("demo") / "images"
    assert sorted(build_demo_images(root)) == sorted(DEMO_IMAGES)
    return root


def demo_env(demo_root: Path, state_dir: Path) -> dict[str, str]:
    """Environment for ``iiif-server demo`` on the session's demo images, with its own change history."""
    return {"IIIF_SERVER_DEMO_ROOT": str(demo_root), "IIIF_SERVER_DEMO_STATE_DIR": str(state_dir)}


#: What ``pytest -m "not slow"`` leaves out, so a developer has an answer in about a minute; CI runs all.
#: Tests that need the demo images (synthesised once per session, ~35 s) and whole modules that drive
#: external programs (Chromium, the official validator) or real worker processes are marked here;
#: single slow tests carry ``@pytest.mark.slow`` where they are defined.
SLOW_FIXTURES = frozenset({"demo_root", "s3_store"})  # s3_store: SeaweedFS, started once per session (~5 s)
SLOW_MODULES = frozenset(
    {
        "tests/web/test_viewer.py",
        "tests/web/test_site_browser.py",
        "tests/web/test_auth_frame.py",
        "tests/web/test_auth_viewers.py",
        "tests/web/test_embed_browser.py",
        "tests/web/test_frame_policy.py",
        "tests/test_conformance.py",
        "tests/ingest/test_queue.py",
        "tests/test_s3_store.py",  # SeaweedFS (tests/s3_store.py)
        "tests/test_s3_source.py",  # SeaweedFS + `iiif-server serve` from the bucket
        "tests/test_slowclients.py",  # real sockets held open until the server's deadlines (seconds each)
    }
)
#: Folders whose every module is slow: tests/cluster/ starts Redis, servers and HAProxy (bench/cluster/cluster.py).
SLOW_FOLDERS = ("tests/cluster/",)


#: A test that starts the real server (gunicorn workers) or runs the `iiif-server` command, itself or
#: through one of its fixtures, takes seconds: slow. Found in the source, so a new one is never missed.
STARTS_PROCESSES = re.compile(r"\brunning_server\(|\bsubprocess\.|\b(?:run_)?cli\(|\bIIIF_SERVER\b|\bCliRunner\b")


def _starts_processes(item: pytest.Item) -> bool:
    functions = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    for definitions in info.name2fixturedefs.values() if info else ():
        functions.extend(definition.func for definition in definitions)
    return any(_source_starts_processes(function) for function in functions if function is not None)


@functools.cache
def _source_starts_processes(function: object) -> bool:
    try:
        return bool(STARTS_PROCESSES.search(inspect.getsource(function)))  # type: ignore[arg-type]
    except (OSError, TypeError):
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = Path(str(item.path)).relative_to(TESTS.parent).as_posix()
        fixtures = set(getattr(item, "fixturenames", ()))
        slow_folder = module.startswith(SLOW_FOLDERS)
        if module in SLOW_MODULES or slow_folder or SLOW_FIXTURES & fixtures or _starts_processes(item):
            item.add_marker(pytest.mark.slow)
