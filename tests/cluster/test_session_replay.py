"""The recorded Mirador session (bench/session/mirador.json) and its replay against a small cluster.

The recording is checked as data: placeholders in place of the identifiers, every path an Image API
request this server parses, the viewer that made it the one vendored. The replay runs through its
command line (``bench/session/replay.py``): Redis, two ``iiif-server serve`` nodes and HAProxy over three
images of the recorded size, from a folder and from a bucket (SeaweedFS), six visitors twice; what
answered (each node's /metrics) must add up to what the visitors asked, every answer 200, no derivative
rendered twice, and the second pass must find more in the caches than the first. Before, a render on a
cluster was counted under no tier: the single flight's second look under the Redis lock reset the note.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from iiif_server.image.model import ApiVersion, ImageRequest
from iiif_server.image.parse import InfoRequest, parse_path
from tests.cluster.test_cluster import pytestmark  # noqa: F401  (skipped without haproxy/redis)
from tests.conftest import make_pattern, save_pyramid

REPO = Path(__file__).resolve().parents[2]
SESSION = REPO / "bench" / "session"
MIRADOR_README = REPO / "iiif_server" / "web" / "static" / "mirador" / "README.md"


def _session() -> dict[str, Any]:
    return json.loads((SESSION / "mirador.json").read_text(encoding="utf-8"))


def test_the_recorded_session_is_image_api_requests_with_placeholders_for_the_images() -> None:
    session = _session()
    assert f"**Mirador {session['viewer']['version']}**" in MIRADOR_README.read_text(encoding="utf-8")
    width, height, canvases = session["image"]["width"], session["image"]["height"], session["canvases"]
    assert (width, height) == (8000, 6000) and canvases == 2
    requests = session["requests"]
    offsets = [r["t"] for r in requests]
    assert offsets == sorted(offsets) and offsets[0] >= 0
    paths = [r["path"] for r in requests]
    assert paths.count("{manifest}") == 1 and paths[0] == "{manifest}"
    parsed: dict[int, list[ImageRequest | InfoRequest]] = {n: [] for n in range(1, canvases + 1)}
    for path in paths[1:]:
        assert path.startswith("/iiif/3/{canvas"), path
        rest = path.removeprefix("/iiif/3/")
        canvas = int(rest[len("{canvas") : rest.index("}")])
        request = parse_path(ApiVersion.V3, rest.replace(f"{{canvas{canvas}}}", "photo.tif"))
        assert isinstance(request, ImageRequest | InfoRequest) and request.identifier == "photo.tif", path
        parsed[canvas].append(request)
    for canvas, requests_of in parsed.items():
        assert isinstance(requests_of[0], InfoRequest), f"canvas {canvas}: a tile before its info.json"
        tiles = [r for r in requests_of if isinstance(r, ImageRequest)]
        assert len(tiles) >= 40 and len(tiles) == len(requests_of) - 1, canvas
        # the researcher reached full resolution: a region of 256 image pixels sent at 256
        assert any("256,256/256,256" in p for p in paths if f"{{canvas{canvas}}}" in p), canvas
    assert "photo" not in "".join(paths)  # no identifier of the recording left


@pytest.fixture(scope="module", params=["folder", "bucket"])
def replayed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``replay.py --images 3 --visitors 6`` over three images of the recorded size (a cheap pattern,
    copied: the cache keys are per identifier), from a folder or uploaded to a private SeaweedFS
    (``--s3-local``); the figures it wrote with ``--json``."""
    folder = tmp_path_factory.mktemp("session")
    root = folder / "images"
    root.mkdir()
    session = _session()
    save_pyramid(make_pattern(session["image"]["width"], session["image"]["height"]), root / "photo-01.tif", "jpeg")
    for n in (2, 3):
        shutil.copyfile(root / "photo-01.tif", root / f"photo-{n:02d}.tif")
    out = folder / "figures.json"
    command = [sys.executable, str(SESSION / "replay.py"), "--images", "3", "--visitors", "6", "--concurrency"]
    command += ["3", "--speed", "0", "--workers", "1", "--image-root", str(root), "--json", str(out)]
    command += ["--s3-local"] if request.param == "bucket" else []
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| image answers: render |" in done.stdout
    return json.loads(out.read_text(encoding="utf-8"))


def test_a_tiny_replay_adds_up_renders_each_view_once_and_hits_more_the_second_time(replayed: dict[str, Any]) -> None:
    setup, cold, warm = replayed["setup"], replayed["passes"]["cold"], replayed["passes"]["warm"]
    session = _session()
    assert (setup["nodes"], setup["images"], setup["visitors"]) == (2, 3, 6)
    per_visitor = len(session["requests"])
    images = sum(1 for r in session["requests"] if r["path"] != "{manifest}" and "info.json" not in r["path"])
    for figures in (cold, warm):
        assert figures["statuses"] == {"200": 6 * per_visitor}, figures["statuses"]
        assert figures["image_requests"] == 6 * images
        assert sum(figures["tiers"].values()) == figures["image_requests"], figures["tiers"]  # every answer named
        assert figures["tiers"]["304"] == 0  # new visitors: no browser cache
    # Each view rendered at most once in the cluster, whichever node was asked: the leader's render is
    # an answer of the render tier; the other node waited for it or found it in Redis.
    assert 0 < cold["renders"] <= cold["tiers"]["render"]
    assert cold["renders"] + warm["renders"] <= cold["distinct_image_urls"] == warm["distinct_image_urls"]
    assert warm["renders"] == 0 and warm["tiers"]["render"] == 0
    assert cold["hit_ratio"] < warm["hit_ratio"] == 1.0
    assert cold["kb_per_visitor"] == warm["kb_per_visitor"] > 300  # the same bytes, from wherever


def test_from_a_bucket_each_stored_tile_is_read_once_then_cached(replayed: dict[str, Any]) -> None:
    """From a bucket a stored tile costs a ranged GET, so it is cached like a render: read by the first
    visitor's node, then memory or Redis for every later request; the warm pass reads nothing."""
    cold, warm = replayed["passes"]["cold"], replayed["passes"]["warm"]
    if replayed["setup"]["store"] == "folder":
        assert "store_gets_per_visitor" not in cold
        assert cold["tiers"]["pass-through"] == warm["tiers"]["pass-through"] > 0  # a file's tiles: never cached
        return
    assert cold["store_gets_per_visitor"] > 0 and cold["store_mb_per_visitor"] > 0
    assert warm["store_gets_per_visitor"] == warm["store_mb_per_visitor"] == 0
    # (a stored tile two workers miss at the same moment is read by both: no single flight for stored tiles)
    assert cold["tiers"]["pass-through"] > 0 and warm["tiers"]["pass-through"] == 0
    assert warm["tiers"]["memory"] + warm["tiers"]["shared"] == warm["image_requests"]
