"""Masters on a partner's HTTP(S) server (issue 14, part 4), over real HTTP both ways: a stdlib
HTTP server with Range support in this test, `iiif-server serve` with `[images] source = "http"`.

Asserted on the partner's own request log: a pass-through tile is one ranged GET of exactly its
stored bytes; a missing file one HEAD; a server ignoring Range is refused without its body being
read; a replaced file (new ETag) gives new pixels; a base_url on a host not allowed stops the start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
import pyvips

from iiif_server.check import free_port, running_server
from iiif_server.image.passthrough import open_reader
from tests.access_site import get
from tests.conftest import block_colour, decode, make_pattern, pixel
from tests.presentation.conftest import write_export

PATTERN = "scans/mẫu.tif"  # 4000 × 3000, JPEG tiles of 256: pixels known from block_colour
HEAD_SECONDS = 0.5
MAX_BYTES = 1_000_000_000
HUGE = 400_000_000  # bytes of the file served by a server ignoring Range (streamed, never held)
TOLERANCE = 12
MODIFIED = {"lm1": "Tue, 03 Nov 2026 10:00:00 GMT", "lm2": "Tue, 03 Nov 2026 11:00:00 GMT"}  # "ETags" sent as dates


@dataclass
class Partner:
    """The partner's store: path -> (bytes, ETag); every request logged as (method, path, Range)."""

    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    log: list[tuple[str, str, str]] = field(default_factory=list)
    redirects: dict[str, str] = field(default_factory=dict)
    conditions: list[str] = field(default_factory=list)  # If-Unmodified-Since of GETs
    sent_huge: int = 0
    base: str = ""

    def requests(self, path: str) -> list[tuple[str, str, str]]:
        return [r for r in self.log if r[1] == path]


def _handler(partner: Partner) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def do_GET(self) -> None:
            self._answer(body=True)

        def _answer(self, body: bool) -> None:
            path = unquote(self.path)
            partner.log.append((self.command, path, self.headers.get("Range", "")))
            if path in partner.redirects:
                self.send_response(302)
                self.send_header("Location", partner.redirects[path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if path == "/masters/no-range.tif":  # ignores Range: the whole (large) file, streamed
                self.send_response(200)
                self.send_header("Content-Length", str(HUGE))
                self.send_header("ETag", '"huge"')
                self.end_headers()
                if body:
                    try:
                        for _ in range(HUGE // 65536):
                            self.wfile.write(b"\0" * 65536)
                            partner.sent_huge += 65536
                    except OSError:
                        pass  # the client closed it: what it did not read was never sent
                return
            if path == "/masters/too-big.tif":
                self.send_response(200)
                self.send_header("Content-Length", str(MAX_BYTES + 1))
                self.send_header("ETag", '"big"')
                self.end_headers()
                return
            if path not in partner.files:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data, etag = partner.files[path]
            wanted = self.headers.get("If-Match")
            since = self.headers.get("If-Unmodified-Since")
            if since is not None and body:
                partner.conditions.append(since)
            if (wanted is not None and wanted != etag) or (since is not None and since != MODIFIED[etag]):
                self.send_response(412)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, start, end = 200, 0, len(data) - 1
            ranged = self.headers.get("Range", "")
            if body and ranged.startswith("bytes="):
                first, _, last = ranged[6:].partition("-")
                status, start, end = 206, int(first), min(int(last), len(data) - 1)
            self.send_response(status)
            if etag in MODIFIED:  # no ETag: versions told by Last-Modified
                self.send_header("Last-Modified", MODIFIED[etag])
            else:
                self.send_header("ETag", etag)
            self.send_header("Content-Length", str(end - start + 1))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            if body:
                self.wfile.write(data[start : end + 1])

    return Handler


def _jpeg_pyramid(image: pyvips.Image, path: Path) -> bytes:
    image.tiffsave(str(path), tile=True, pyramid=True, compression="jpeg", Q=90, tile_width=256, tile_height=256)
    return path.read_bytes()


@pytest.fixture(scope="module")
def masters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("http-masters")
    _jpeg_pyramid(make_pattern(4000, 3000), folder / "pattern.tif")
    _jpeg_pyramid(make_pattern(4000, 3000).invert().copy(interpretation="srgb"), folder / "inverted.tif")
    return {"pattern": folder / "pattern.tif", "inverted": folder / "inverted.tif"}


@pytest.fixture(scope="module")
def partner(masters: dict[str, Path]) -> Iterator[Partner]:
    state = Partner()
    state.files["/masters/" + PATTERN] = (masters["pattern"].read_bytes(), '"v1"')
    state.files["/masters/scans/replaced.tif"] = (masters["pattern"].read_bytes(), '"r1"')
    state.files["/masters/scans/dated.tif"] = (masters["pattern"].read_bytes(), "lm1")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    state.redirects["/masters/elsewhere.tif"] = f"http://localhost:{server.server_address[1]}/masters/{quote(PATTERN)}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _env(partner: Partner, state: Path, hosts: str = "127.0.0.1") -> dict[str, str]:
    return {
        "IIIF_SERVER_IMAGES_SOURCE": "http",
        "IIIF_SERVER_HTTP_SOURCE_BASE_URL": partner.base + "/masters/",
        "IIIF_SERVER_HTTP_SOURCE_ALLOWED_HOSTS": hosts,
        "IIIF_SERVER_HTTP_SOURCE_CACHE_DIR": str(state / "chunks"),
        "IIIF_SERVER_HTTP_SOURCE_CHUNK_MB": "0.0625",  # 64 KB: the pattern is several chunks
        "IIIF_SERVER_HTTP_SOURCE_HEAD_SECONDS": str(HEAD_SECONDS),
        "IIIF_SERVER_HTTP_SOURCE_MAX_BYTES": str(MAX_BYTES),
        "IIIF_SERVER_HTTP_SOURCE_RETRIES": "0",
        "IIIF_SERVER_IMAGES_ROOT": str(state / "no-images-here"),  # nothing is read from disk
        "IIIF_SERVER_MANIFESTS_SOURCE": str(write_export(state / "export.csv", [])),
        "IIIF_SERVER_MANIFESTS_STATE_DIR": str(state / "manifests"),
        "IIIF_SERVER_ACCESS_STATE_DIR": str(state / "access"),
    }


@pytest.fixture(scope="module")
def site(partner: Partner, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("http-state")
    with running_server(
        ["serve", "--workers", "1"], free_port(), _env(partner, state), log=state / "server.log"
    ) as base:
        yield base


def _url(identifier: str, tail: str) -> str:
    return f"/iiif/3/{quote(identifier, safe='')}/{tail}"


def test_info_json_comes_from_the_partner(site: str, partner: Partner) -> None:
    status, headers, body = get(site, _url(PATTERN, "info.json"))
    assert status == 200, body
    info = json.loads(body)
    assert (info["width"], info["height"]) == (4000, 3000)
    assert info["id"].endswith("/iiif/3/" + quote(PATTERN, safe=""))
    assert info["tiles"][0]["width"] == 256 and headers["etag"]
    asked = partner.requests("/masters/" + PATTERN)
    assert asked[0][0] == "HEAD" and all(r[0] == "HEAD" or r[2].startswith("bytes=") for r in asked)  # never whole


def test_ready_when_the_partner_answers(site: str, partner: Partner) -> None:
    status, _, body = get(site, "/health/ready")
    assert status == 200 and json.loads(body)["checks"]["images"] == "ok", body
    assert ("HEAD", "/masters/", "") in partner.log


def _ranged_bytes(requests: list[tuple[str, str, str]]) -> int:
    spans = [r[2].removeprefix("bytes=").partition("-") for r in requests if r[0] == "GET"]
    return sum(int(last) - int(first) + 1 for first, _, last in spans)


def test_a_passthrough_tile_is_the_stored_bytes_in_one_ranged_get(
    site: str, partner: Partner, masters: dict[str, Path]
) -> None:
    local = open_reader(masters["pattern"])
    assert local is not None
    level = local.level(0)
    assert level is not None
    get(site, _url(PATTERN, "info.json"))
    opened = len(partner.log)
    status, _, tile = get(site, _url(PATTERN, "0,0,256,256/256,/0/default.jpg"))  # reads the TIFF structure
    assert status == 200 and tile == local.jpeg(level, 0, 0)
    first_tile = partner.log[opened:]
    before = len(partner.log)
    status, headers, tile = get(site, _url(PATTERN, "3584,2560,256,256/256,/0/default.jpg"))
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert tile == local.jpeg(level, 14, 10)  # the file's own stored tile, byte for byte
    gets = [r for r in partner.log[before:] if r[0] == "GET"]
    assert len(gets) == 1, gets
    first, _, last = gets[0][2].removeprefix("bytes=").partition("-")
    stored = len(tile) - len(level._prefix) + 2  # the stored stream, before its tables and marker are added
    assert int(last) - int(first) + 1 == stored
    local.close()
    info = [r for r in partner.log[:opened] if r[1] == "/masters/" + PATTERN]
    print(
        f"\nmaster of {masters['pattern'].stat().st_size} bytes, chunks of 64 KB: info.json"
        f" {_ranged_bytes(info)} bytes in {sum(r[0] == 'GET' for r in info)} GETs; then the file's first tile"
        f" {_ranged_bytes(first_tile)} bytes in {sum(r[0] == 'GET' for r in first_tile)} GETs (structure cached);"
        f" a later tile {stored} bytes in 1 GET"
    )


def test_a_render_reads_ranges(site: str, partner: Partner) -> None:
    status, _, body = get(site, _url(PATTERN, "100,100,800,600/400,/0/default.png"))
    assert status == 200, body
    image = decode(body)
    assert (image.width, image.height) == (400, 300)
    for x, y in ((20, 20), (220, 120), (380, 280)):
        sx, sy = 100 + x * 2, 100 + y * 2
        expected = block_colour(sx // 100, sy // 100)
        assert all(abs(a - b) <= TOLERANCE for a, b in zip(pixel(image, x, y), expected, strict=True)), (x, y)
    assert all(r[2] for r in partner.requests("/masters/" + PATTERN) if r[0] == "GET")


def test_missing_is_404_escapes_400_and_no_other_host(site: str, partner: Partner) -> None:
    status, _, body = get(site, _url("scans/none.tif", "info.json"))
    assert (status, body.strip()) == (404, b"no image 'scans/none.tif'")
    assert [r[0] for r in partner.requests("/masters/scans/none.tif")] == ["HEAD"]
    status, _, body = get(site, _url("scans/../mẫu.tif", "info.json"))
    assert status == 400 and b"not a valid image path" in body
    count = len(partner.log)
    status, _, body = get(site, _url("elsewhere.tif", "info.json"))  # 302 to localhost: not allowed
    assert status == 503 and b"\n" not in body.strip()
    assert len(partner.log) == count + 1  # the redirect was not followed


def test_too_big_and_range_ignored_are_refused_unread(site: str, partner: Partner) -> None:
    status, _, body = get(site, _url("too-big.tif", "info.json"))
    assert (
        status == 422
        and body.strip() == f"image larger than [http_source] max_bytes ({MAX_BYTES + 1} > {MAX_BYTES})".encode()
    )
    assert [r[0] for r in partner.requests("/masters/too-big.tif")] == ["HEAD"]
    started = time.monotonic()
    status, _, body = get(site, _url("no-range.tif", "info.json"))
    assert status in (422, 503) and b"\n" not in body.strip(), body
    assert time.monotonic() - started < 10
    time.sleep(0.5)
    gets = [r for r in partner.requests("/masters/no-range.tif") if r[0] == "GET"]
    assert gets and all(r[2].startswith("bytes=") for r in gets)
    # closed unread: each answer stopped once the sockets' buffers were full (a few MB), not at 400 MB
    assert partner.sent_huge < HUGE // 8, partner.sent_huge


def test_a_replaced_file_gives_new_pixels(site: str, partner: Partner, masters: dict[str, Path]) -> None:
    tile = _url("scans/replaced.tif", "0,0,256,256/256,/0/default.jpg")
    render = _url("scans/replaced.tif", "0,0,1000,1000/100,/0/default.png")
    status, headers, old = get(site, tile)
    assert status == 200 and pixel(decode(old), 10, 10)[0] < 40
    _, render_headers, old_render = get(site, render)
    assert pixel(decode(old_render), 5, 5)[0] < 40
    partner.files["/masters/scans/replaced.tif"] = (masters["inverted"].read_bytes(), '"r2"')
    time.sleep(HEAD_SECONDS + 0.2)
    status, new_headers, new = get(site, tile)
    assert status == 200 and new_headers["etag"] != headers["etag"]
    assert pixel(decode(new), 10, 10)[0] > 215
    _, new_render_headers, new_render = get(site, render)
    assert new_render_headers["etag"] != render_headers["etag"] and pixel(decode(new_render), 5, 5)[0] > 215


def test_without_an_etag_versions_are_told_by_last_modified(
    site: str, partner: Partner, masters: dict[str, Path]
) -> None:
    tile = _url("scans/dated.tif", "0,0,256,256/256,/0/default.jpg")
    status, headers, old = get(site, tile)
    assert status == 200 and pixel(decode(old), 10, 10)[0] < 40
    gets = [r for r in partner.requests("/masters/scans/dated.tif") if r[0] == "GET"]
    assert gets and all(r[2].startswith("bytes=") for r in gets)
    assert partner.conditions and set(partner.conditions) == {MODIFIED["lm1"]}  # every GET named the version
    partner.files["/masters/scans/dated.tif"] = (masters["inverted"].read_bytes(), "lm2")
    time.sleep(HEAD_SECONDS + 0.2)
    status, new_headers, new = get(site, tile)
    assert status == 200 and new_headers["etag"] != headers["etag"] and pixel(decode(new), 10, 10)[0] > 215


def test_a_host_not_allowed_stops_the_start(partner: Partner, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IIIF_SERVER_")}
    env.update(_env(partner, tmp_path, hosts="images.partner.example"), IIIF_SERVER_CONFIG=os.devnull)
    asked = len(partner.log)
    done = subprocess.run(
        [sys.executable, "-m", "iiif_server", "serve", "--port", str(free_port()), "--host", "127.0.0.1"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "allowed_hosts" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(partner.log) == asked  # nothing was asked of the partner
