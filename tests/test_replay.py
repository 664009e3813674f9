"""Replayed answers at the ASGI edge: sent again without running the stack, and never once they
could be wrong (a replaced master, a purge, a policy that now says no, a different host, Accept or
proxy). Real HTTP against gunicorn's uvicorn worker is at the end."""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from flask import Flask

from iiif_server.access import Allowed, Decision, Denied
from iiif_server.app import create_app
from iiif_server.asgi import ASGIEdge
from iiif_server.check import free_port, running_server
from iiif_server.config import Settings
from iiif_server.image.sources import Located
from tests.conftest import decode, make_pattern, pixel, save_pyramid
from tests.test_asgi import Recorder, _request, _scope

TILE = "/iiif/3/scan.tif/256,0,256,256/256,/0/default.jpg"  # one stored JPEG tile: pass-through
RENDERED = "/iiif/3/scan.tif/full/97,/0/default.png"  # rendered once, then the memory tier's copy
INFO = "/iiif/3/scan.tif/info.json"


class Switch:
    """A policy that can be told to refuse an image from now on."""

    def __init__(self) -> None:
        self.refused: set[str] = set()

    def decide(self, source: Located, levels: frozenset[str] = frozenset()) -> Decision:
        return Denied("restricted") if source.identifier in self.refused else Allowed()

    def stale(self) -> bool:
        return False


def _save(root: Path, inverted: bool = False) -> None:
    image = make_pattern(1024, 768)
    if inverted:
        image = image.invert()
    save_pyramid(image, root / "scan.tif", compression="jpeg")


@pytest.fixture
def site(tmp_path: Path) -> tuple[Flask, Switch, Path]:
    root = tmp_path / "images"
    root.mkdir()
    _save(root)
    settings = Settings().replace(
        images={"root": root},
        server={"proxy_hops": 1, "access_log": "off", "trusted_proxies": ("192.0.2.0/24",)},
        cache={"disk_dir": tmp_path / "cache"},
        manifests={"source": tmp_path / "no-export.csv", "state_dir": tmp_path / "state"},
    )
    app = create_app(settings)
    switch = Switch()
    app.extensions["iiif_server"].policy = switch
    app.extensions["iiif_replay"].policy = switch
    return app, switch, root


def _edge(app: Flask) -> tuple[ASGIEdge, Recorder]:
    recorder = Recorder(app)
    edge = ASGIEdge(
        recorder, threads=2, replay=app.extensions["iiif_replay"], record=app.extensions["iiif_observed"].record
    )
    return edge, recorder


def _warm(edge: ASGIEdge, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, dict, bytes]:
    """First on a thread (nothing known yet), then inline from memory, which the edge keeps."""
    _request(edge, _scope(path, headers=headers))
    return _request(edge, _scope(path, headers=headers))


@pytest.mark.parametrize("path", [TILE, RENDERED, INFO])
def test_a_repeated_request_is_answered_without_running_the_stack(site: tuple[Flask, Switch, Path], path: str) -> None:
    app, _, _ = site
    edge, recorder = _edge(app)
    status, headers, body = _warm(edge, path)
    assert status == 200
    recorder.calls.clear()
    again_status, again_headers, again = _request(edge, _scope(path))
    assert recorder.calls == []  # nothing below the edge ran
    assert (again_status, again_headers, again) == (status, headers, body)
    head_status, head_headers, head_body = _request(edge, _scope(path, method="HEAD"))
    assert recorder.calls == [] and head_status == 200 and head_body == b""
    assert head_headers[b"content-length"] == str(len(body)).encode() and head_headers[b"etag"] == headers[b"etag"]
    if path == INFO:
        assert json.loads(again)["id"] == "http://iiif.test/iiif/3/scan.tif"
    else:
        image = decode(again)
        assert image.width == (256 if path == TILE else 97)
        assert pixel(image, 5, 5) != (0, 0, 0)


def test_a_replaced_master_is_never_replayed(site: tuple[Flask, Switch, Path]) -> None:
    app, _, root = site
    edge, recorder = _edge(app)
    _, headers, before = _warm(edge, TILE)
    original = pixel(decode(before), 100, 100)
    _save(root, inverted=True)
    stat = os.stat(root / "scan.tif")
    os.utime(root / "scan.tif", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    recorder.calls.clear()
    status, after_headers, after = _request(edge, _scope(TILE))
    assert status == 200 and recorder.calls  # the stack ran again
    assert after_headers[b"etag"] != headers[b"etag"]
    assert pixel(decode(after), 100, 100) == tuple(255 - v for v in original)


def test_the_access_policy_is_asked_before_any_replay(site: tuple[Flask, Switch, Path]) -> None:
    app, switch, _ = site
    edge, recorder = _edge(app)
    for path in (TILE, INFO):
        assert _warm(edge, path)[0] == 200
    switch.refused.add("scan.tif")
    for path in (TILE, INFO):
        status, headers, body = _request(edge, _scope(path))
        assert status == 403 and b"restricted" in body and headers[b"cache-control"] == b"no-store"
    assert len(recorder.calls) >= 2  # the stack answered both refusals


def test_a_purge_ends_every_replay(site: tuple[Flask, Switch, Path]) -> None:
    app, _, _ = site
    edge, recorder = _edge(app)
    _warm(edge, RENDERED)
    app.extensions["iiif_caches"].tiered.purge()
    recorder.calls.clear()
    status, _, body = _request(edge, _scope(RENDERED))
    assert status == 200 and recorder.calls and decode(body).width == 97


def test_conditional_requests_go_to_the_stack(site: tuple[Flask, Switch, Path]) -> None:
    app, _, _ = site
    edge, recorder = _edge(app)
    _, headers, _ = _warm(edge, TILE)
    recorder.calls.clear()
    status, _, body = _request(edge, _scope(TILE, headers=[(b"if-none-match", headers[b"etag"])]))
    assert status == 304 and body == b"" and recorder.calls


def test_info_json_depends_on_host_accept_and_a_trusted_proxy(site: tuple[Flask, Switch, Path]) -> None:
    app, _, _ = site
    edge, _ = _edge(app)
    ld = [(b"accept", b'application/ld+json;profile="http://iiif.io/api/image/3/context.json"')]
    plain = [(b"accept", b"application/json")]
    answers = {
        "ld": _warm(edge, INFO, ld),
        "plain": _warm(edge, INFO, plain),
        "proxied": _warm(
            edge, INFO, [*plain, (b"x-forwarded-host", b"museum.example"), (b"x-forwarded-proto", b"https")]
        ),
        "other proxy": _warm(edge, INFO, [*plain, (b"x-forwarded-host", b"archive.example")]),
    }
    types = {name: headers[b"content-type"] for name, (_, headers, _) in answers.items()}
    assert types["ld"].startswith(b"application/ld+json") and types["plain"] == b"application/json"
    ids = {name: json.loads(body)["id"] for name, (_, _, body) in answers.items()}
    assert ids == {
        "ld": "http://iiif.test/iiif/3/scan.tif",
        "plain": "http://iiif.test/iiif/3/scan.tif",
        "proxied": "https://museum.example/iiif/3/scan.tif",
        "other proxy": "http://archive.example/iiif/3/scan.tif",
    }
    # and each, asked again, is its own replay
    again = _request(
        edge, _scope(INFO, headers=[*plain, (b"x-forwarded-host", b"museum.example"), (b"x-forwarded-proto", b"https")])
    )
    assert json.loads(again[2])["id"] == "https://museum.example/iiif/3/scan.tif"


def test_forwarded_headers_from_an_untrusted_client_change_nothing(site: tuple[Flask, Switch, Path]) -> None:
    app, _, _ = site
    edge, _ = _edge(app)
    scope = _scope(INFO, headers=[(b"x-forwarded-host", b"evil.example")])
    scope["client"] = ("203.0.113.9", 40000)  # not in trusted_proxies
    for _ in range(3):
        assert json.loads(_request(edge, scope)[2])["id"] == "http://iiif.test/iiif/3/scan.tif"


def test_replays_are_kept_only_on_the_loop_thread(site: tuple[Flask, Switch, Path]) -> None:
    """The store is not locked for cross-thread use beyond its LRU: only the loop keeps answers."""
    app, _, _ = site
    edge, recorder = _edge(app)
    _request(edge, _scope(RENDERED))  # rendered on a pool thread: not kept
    threads = {name for name, _ in recorder.calls}
    assert any(name.startswith("iiif") for name in threads)
    assert len(app.extensions["iiif_replay"].answers) == 0
    _request(edge, _scope(RENDERED))  # inline, from memory: kept
    assert len(app.extensions["iiif_replay"].answers) == 1
    assert threading.current_thread().name in {name for name, _ in recorder.calls}


# -- real HTTP -------------------------------------------------------------------------------


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def test_over_http_replays_are_logged_and_a_replaced_master_is_served_new(tmp_path: Path) -> None:
    root = tmp_path / "images"
    root.mkdir()
    _save(root)
    log = tmp_path / "server.log"
    env = {"IIIF_SERVER_SERVER_WORKER": "asgi"}
    with running_server(["serve", "--images", str(root), "--workers", "1"], free_port(), env, log=log) as base:
        answers = [_get(base + TILE) for _ in range(5)]
        assert {status for status, _, _ in answers} == {200}
        assert len({body for _, _, body in answers}) == 1 and len({h["etag"] for _, h, _ in answers}) == 1
        before = pixel(decode(answers[0][2]), 100, 100)
        replacement = tmp_path / "new.tif"
        save_pyramid(make_pattern(1024, 768).invert(), replacement, compression="jpeg")
        os.replace(replacement, root / "scan.tif")  # a new inode: a new fingerprint
        status, headers, after = _get(base + TILE)
        assert status == 200 and headers["etag"] != answers[0][1]["etag"]
        assert pixel(decode(after), 100, 100) == tuple(255 - v for v in before)
    lines = [line for line in log.read_text().splitlines() if "256,0,256,256" in line]
    assert len(lines) == 6, lines  # replays are logged like every other answer
    assert all('" 200 ' in line and line.endswith("pass-through") for line in lines), lines


def test_two_host_headers_are_never_replayed(site: tuple[Flask, Switch, Path]) -> None:
    app, _, _ = site
    edge, recorder = _edge(app)
    _warm(edge, INFO)
    recorder.calls.clear()
    status, _, body = _request(edge, _scope(INFO, headers=[(b"host", b"iiif.test")]))  # and _scope's own
    assert status == 400 and b"Host" in body and recorder.calls
