"""Issue 12, the authorised tier: a login session opens a restricted image at full resolution,
privately, audited; anonymous clients and caches never get what it saw (real gunicorn, real HTTP).

Before, no image looked at the session cookie: a logged-in researcher got the degraded view too.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iiif_server.access import ALLOWED, Authorised, Degraded
from iiif_server.access.credentials import Credentials, Grant, session_token
from iiif_server.check import free_port, running_server
from iiif_server.errors import WouldBlock
from tests.access_site import add_user, cli, server_env
from tests.conftest import decode, make_pattern, save_pyramid
from tests.test_access_login import Browser

WIDTH, HEIGHT = 2400, 1800  # degraded: 1000 x 750
PASSWORDS = {"alice": "alice-Pa55word-12", "bob": "bob-Pa55word-345"}
LEVELS = {"alice": "restricted", "bob": "internal"}  # bob may see the vault, not the stele
ADDRESS = "203.0.113.7"  # the client, as the trusted proxy (127.0.0.1) forwards it
CACHE_SECONDS = 1.0
TILE = "/iiif/3/stele.tif/0,0,256,256/256,/0/default.jpg"  # full resolution: 401 for anonymous clients
FULL = "/iiif/3/stele.tif/full/max/0/default.jpg"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    base = tmp_path_factory.mktemp("authorised")
    images, state, log = base / "images", base / "state", base / "server.log"
    images.mkdir()
    pattern = make_pattern(WIDTH, HEIGHT)
    for name in ("open", "stele", "vault"):
        save_pyramid(pattern, images / f"{name}.tif", compression="jpeg")
    export = base / "collection.csv"
    export.write_text(
        "inventory_no,title_vi,access,images\nR-1,Mở,public,open.tif\nR-2,Bia,restricted,stele.tif\n"
        "R-3,Kho,internal,vault.tif\n",
        encoding="utf-8",
    )
    for name, password in PASSWORDS.items():
        add_user(state, name, LEVELS[name], password)
    # the event loop, the replay and wire edge
    env = server_env(export, state, worker="asgi", access_session_cache_seconds=str(CACHE_SECONDS))
    with running_server(["serve", "--images", str(images), "--workers", "1"], free_port(), env, log=log) as url:
        yield url, state, log


class Connection:
    """One keep-alive connection, as a viewer holds it; the cookie is per request."""

    def __init__(self, base: str) -> None:
        self.connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)

    def get(self, path: str, cookie: str = "", **headers: str) -> tuple[int, dict[str, str], bytes]:
        sent = {"X-Forwarded-For": ADDRESS, **headers, **({"Cookie": f"iiif_session={cookie}"} if cookie else {})}
        self.connection.request("GET", path, headers=sent)
        response = self.connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def connection(site: tuple[str, Path, Path]) -> Iterator[Connection]:
    connection = Connection(site[0])
    yield connection
    connection.close()


def _login(base: str, name: str) -> str:
    browser = Browser(base, ADDRESS)
    status, _, _ = browser.login(name, PASSWORDS[name])
    assert status == 303
    return browser.cookies["iiif_session"]


def _size(body: bytes) -> tuple[int, int]:
    image = decode(body)
    return image.width, image.height


def _private(headers: dict[str, str]) -> bool:
    vary = {v.strip().lower() for v in headers.get("vary", "").split(",")}
    return headers["cache-control"].startswith("private") and {"cookie", "authorization"} <= vary


def test_a_session_with_the_level_opens_full_resolution_privately_and_anonymous_stays_refused(
    site: tuple[str, Path, Path], connection: Connection
) -> None:
    base, _, _ = site
    token = _login(base, "alice")
    for _ in range(2):  # the second from the caches
        status, headers, body = connection.get(FULL, token)
        assert status == 200 and _size(body) == (WIDTH, HEIGHT) and _private(headers)
        status, headers, tile = connection.get(TILE, token)
        assert status == 200 and _size(tile) == (256, 256) and _private(headers)
    _, public_headers, public_tile = connection.get(TILE.replace("stele", "open"))
    assert tile == public_tile  # the same pixels as the same scan served openly
    assert public_headers["cache-control"].startswith("public")
    status, headers, body = connection.get("/iiif/3/stele.tif/info.json", token)
    public_info = connection.get("/iiif/3/open.tif/info.json")[2]
    document = json.loads(body)
    assert len(document.pop("service")) == 2  # the authorization services (tests/test_access_viewers.py)
    document["@context"] = document["@context"][-1]
    assert status == 200 and document == json.loads(public_info.replace(b"open.tif", b"stele.tif"))
    assert _private(headers)
    # anonymous, right after, on the same keep-alive connection: the caches hold the full-resolution bytes
    for _ in range(3):
        status, _, body = connection.get(TILE)
        assert status == 401, body
        status, headers, body = connection.get(FULL)
        assert status == 200 and _size(body) == (1000, 750) and _private(headers)
        assert json.loads(connection.get("/iiif/3/stele.tif~preview/info.json")[2])["maxWidth"] == 1000
        assert connection.get("/iiif/3/stele.tif/info.json")[0] == 302  # to that preview tier
    # a cookie that is no session, and an account without the level, are anonymous
    assert connection.get(TILE, "not-a-session")[0] == 401
    bob = _login(base, "bob")
    assert connection.get(TILE, bob)[0] == 401
    assert _size(connection.get(FULL, bob)[2]) == (1000, 750)
    status, headers, body = connection.get("/iiif/3/vault.tif/full/max/0/default.jpg", bob)  # bob's level
    assert status == 200 and _size(body) == (WIDTH, HEIGHT) and _private(headers)
    assert connection.get("/iiif/3/vault.tif/full/max/0/default.jpg", token)[0] == 404  # hidden from alice


def test_logout_closes_the_image_within_the_cache_bound(site: tuple[str, Path, Path], connection: Connection) -> None:
    base, _, _ = site
    browser = Browser(base, ADDRESS)
    assert browser.login("alice", PASSWORDS["alice"])[0] == 303
    token = browser.cookies["iiif_session"]
    assert connection.get(TILE, token)[0] == 200  # the session is in the worker's memory now
    csrf = browser.csrf()
    assert browser.post("/auth/logout", {"csrf": csrf})[0] == 303
    ended = time.monotonic()
    while connection.get(TILE, token)[0] == 200:
        assert time.monotonic() - ended < CACHE_SECONDS + 0.5, "still open after the session cache's bound"
        time.sleep(0.05)
    assert connection.get(TILE, token)[0] == 401
    assert _size(connection.get(FULL, token)[2]) == (1000, 750)


def test_full_resolution_answers_are_audited_with_user_image_and_address(
    site: tuple[str, Path, Path], connection: Connection
) -> None:
    base, state, _ = site
    token = _login(base, "alice")
    marker = "/iiif/3/stele.tif/0,0,512,512/512,/0/default.jpg"  # full resolution: audited
    small = "/iiif/3/stele.tif/full/!300,300/0/default.jpg"  # within the public view: not audited
    assert connection.get(marker, token)[0] == 200
    assert connection.get(small, token)[0] == 200
    assert connection.get("/iiif/3/open.tif/full/max/0/default.jpg", token)[0] == 200  # public: not audited
    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while not any(row["request"] == marker for row in rows) and time.monotonic() < deadline:
        time.sleep(0.2)  # the writer thread batches every 0.2 s
        result = cli(state, "access", "log", "--format", "json")
        rows = json.loads(result.stdout) if result.returncode == 0 else []
    mine = [row for row in rows if row["request"] == marker]
    assert len(mine) == 1, rows
    assert (mine[0]["user"], mine[0]["image"], mine[0]["address"]) == ("alice", "stele.tif", ADDRESS)
    assert not any(row["request"] == small or "open.tif" in row["image"] for row in rows), rows
    table = cli(state, "access", "log", "--user", "alice")
    assert table.returncode == 0 and "stele.tif" in table.stdout and "alice" in table.stdout


def _durations(log: Path, agent: str) -> list[float]:
    return [float(line.rsplit(" ", 2)[1]) for line in log.read_text().splitlines() if f'"{agent}"' in line]


def test_a_cookie_on_a_public_tile_keeps_it_replayed(site: tuple[str, Path, Path], connection: Connection) -> None:
    """Public answers are decided without the cookie: replayed either way (timed in the access log:
    a replay skips the whole stack, a conditional request always runs it)."""
    base, _, log = site
    token = _login(base, "alice")
    tile = "/iiif/3/open.tif/256,256,256,256/256,/0/default.jpg"
    for _ in range(40):
        for agent, extra in (("anon", {}), ("cookie", {}), ("stack", {"If-None-Match": '"other"'})):
            sent = token if agent == "cookie" else ""
            status, headers, _ = connection.get(tile, sent, **{"User-Agent": agent, **extra})
            assert status == 200 and headers["cache-control"].startswith("public")
    deadline = time.monotonic() + 10
    while min(len(_durations(log, agent)) for agent in ("anon", "cookie", "stack")) < 40:
        assert time.monotonic() < deadline, "access log lines missing"
        time.sleep(0.1)
    anonymous, cookie, stack = (_durations(log, agent)[5:] for agent in ("anon", "cookie", "stack"))
    assert min(cookie) < 2 * min(anonymous) and min(cookie) < min(stack), (min(cookie), min(anonymous), min(stack))


# -- in-process: the credentials cache -------------------------------------------------


class _Sessions:
    def __init__(self) -> None:
        self.live: dict[str, Grant] = {}
        self.lookups = 0

    def lookup(self, token: str | None) -> Any:
        self.lookups += 1
        grant = self.live.get(token or "")
        return None if grant is None else type("S", (), {"username": grant.user, "levels": tuple(grant.levels)})()


def test_the_session_lookup_is_cached_for_at_most_the_bound() -> None:
    sessions, clock = _Sessions(), [0.0]
    credentials = Credentials(sessions, ttl=1.0, clock=lambda: clock[0])  # type: ignore[arg-type]
    sessions.live["t"] = Grant("alice", frozenset({"restricted"}))
    environ = {"HTTP_COOKIE": "lang=vi; iiif_session=t"}
    with pytest.raises(WouldBlock):  # not yet in memory: a database read, not on the event loop
        credentials.grant(environ, fast=True)
    assert credentials.grant(environ) == Grant("alice", frozenset({"restricted"}))
    for _ in range(100):
        assert credentials.grant(environ, fast=True) is not None
    assert sessions.lookups == 1
    del sessions.live["t"]  # logout
    clock[0] = 0.99
    assert credentials.grant(environ) is not None  # within the bound
    clock[0] = 1.0
    assert credentials.grant(environ) is None and sessions.lookups == 2
    assert credentials.grant({}) is None and credentials.grant({"HTTP_COOKIE": "other=1"}) is None
    assert sessions.lookups == 2  # no cookie of ours: nothing asked
    assert credentials.grant({"HTTP_AUTHORIZATION": "Bearer abc"}) is None  # no token service yet


def test_bearer_tokens_go_to_the_hook_and_cookies_parse_strictly() -> None:
    tokens = {"tok": Grant("kiosk-1", frozenset({"restricted"}))}
    credentials = Credentials(_Sessions(), bearer=tokens.get)  # type: ignore[arg-type]
    assert credentials.grant({"HTTP_AUTHORIZATION": "Bearer tok"}) == tokens["tok"]
    assert credentials.grant({"HTTP_AUTHORIZATION": "Basic tok"}) is None
    assert session_token('iiif_session="abc"; x=1') == "abc"
    assert session_token("xiiif_session=abc") is None
    assert session_token("iiif_session=" + "a" * 200) is not None  # too long: refused by the lookup, not here


def test_authorised_is_a_distinct_decision() -> None:
    decision = Authorised("alice", Degraded(1000))
    assert decision != ALLOWED and decision.anonymous == Degraded(1000)
