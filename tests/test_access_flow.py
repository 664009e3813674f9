"""Issue 12, the IIIF authorization services: access tokens (Auth 2.0 and 1.0), the active, kiosk and
external patterns, logout (real gunicorn, real HTTP; details in-process).

Before, /auth/2/token, /auth/1/token, /auth/2/kiosk and the GET logouts were 404s, and a bearer token
or a staff network opened nothing.
"""

from __future__ import annotations

import http.client
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from iiif_server.access.accounts import Accounts
from iiif_server.access.ambient import Ambient
from iiif_server.access.credentials import Credentials, Grant
from iiif_server.access.messages import origin_of, script_json
from iiif_server.access.sessions import Sessions
from iiif_server.access.tokens import Tokens
from iiif_server.check import free_port, running_server
from iiif_server.errors import WouldBlock
from iiif_server.forwarded import PROXIED
from tests.access_site import add_user, server_env
from tests.conftest import decode, make_pattern, save_pyramid
from tests.test_access_login import Browser

PASSWORD = "alice-Pa55word-12"
ADDRESS = "203.0.113.7"  # an ordinary client, as the trusted proxy (127.0.0.1) forwards it
KIOSK = "198.51.100.20"
STAFF = "192.0.2.9"
VIEWER = "https://viewer.example.org"
CACHE_SECONDS = 0.5
TILE = "/iiif/3/stele.tif/0,0,256,256/256,/0/default.jpg"  # full resolution: 401 for anonymous clients
POST = re.compile(r"window\.parent\.postMessage\((\{.*?\}), (\"[^\"]*\")\);")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    base = tmp_path_factory.mktemp("flow")
    images, state = base / "images", base / "state"
    images.mkdir()
    pattern = make_pattern(1200, 900)
    for name in ("open", "stele"):
        save_pyramid(pattern, images / f"{name}.tif", compression="jpeg")
    export = base / "collection.csv"
    export.write_text("inventory_no,access,images\nR-1,public,open.tif\nR-2,restricted,stele.tif\n", encoding="utf-8")
    add_user(state, "alice", "restricted", PASSWORD)
    env = server_env(
        export,
        state,
        access_session_cache_seconds=str(CACHE_SECONDS),
        access_token_origins=VIEWER,
        access_kiosk_networks="198.51.100.0/24",
        access_external_networks="192.0.2.0/24",
        access_external_header="X-Remote-User",
    )
    with running_server(["serve", "--images", str(images), "--workers", "1"], free_port(), env) as url:
        yield url, state


def _get(
    base: str, path: str, source: str = "127.0.0.1", **headers: str
) -> tuple[int, dict[str, str], bytes, list[str]]:
    """One GET from ``source`` (127.0.0.1 is the trusted proxy; 127.0.0.2 is not)."""
    port = int(base.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        cookies = response.headers.get_all("Set-Cookie") or []
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read(), cookies
    finally:
        connection.close()


def _message(body: bytes, origin: str) -> dict:
    """The message the page posts, checking it is posted to ``origin`` exactly."""
    found = POST.findall(body.decode())
    assert len(found) == 1, body
    assert json.loads(found[0][1]) == origin
    return json.loads(found[0][0])


def _token_rows(state: Path) -> int:
    with sqlite3.connect(state / "accounts.sqlite3") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM access_tokens").fetchone()[0])


def _login(base: str, address: str = ADDRESS) -> Browser:
    browser = Browser(base, address)
    assert browser.login("alice", PASSWORD)[0] == 303
    return browser


def _cookie(browser: Browser) -> dict[str, str]:
    return {
        "X-Forwarded-For": browser.headers["X-Forwarded-For"],
        "Cookie": f"iiif_session={browser.cookies['iiif_session']}",
    }


def test_the_token_page_posts_to_the_allowed_origin_only_and_safely(site: tuple[str, Path]) -> None:
    base, state = site
    browser = _login(base)
    status, headers, body, _ = _get(base, f"/auth/2/token?messageId=m-1&origin={quote(VIEWER)}", **_cookie(browser))
    assert status == 200 and headers["content-type"].startswith("text/html")
    message = _message(body, VIEWER)
    assert set(message) == {"@context", "type", "accessToken", "expiresIn", "messageId"}
    assert message["@context"] == "http://iiif.io/api/auth/2/context.json" and message["type"] == "AuthAccessToken2"
    assert message["messageId"] == "m-1" and 0 < message["expiresIn"] <= 3600
    assert message["accessToken"] != browser.cookies["iiif_session"]
    assert headers["cache-control"] == "no-store" and "x-frame-options" not in headers
    policy = headers["content-security-policy"]
    assert f"frame-ancestors 'self' {VIEWER}" in policy and "script-src 'nonce-" in policy
    nonce = re.search(r"'nonce-([^']+)'", policy).group(1)  # type: ignore[union-attr]
    assert body.decode().count("<script") == 1 and f'<script nonce="{nonce}">' in body.decode()
    # the server's own origin may receive one too
    assert _message(_get(base, f"/auth/2/token?messageId=2&origin={base}", **_cookie(browser))[2], base)["accessToken"]
    # another origin: invalidOrigin, posted to it, and no token made at all
    rows = _token_rows(state)
    status, _, body, _ = _get(base, "/auth/2/token?messageId=3&origin=https://evil.example", **_cookie(browser))
    error = _message(body, "https://evil.example")
    assert status == 200 and error["type"] == "AuthAccessTokenError2" and error["profile"] == "invalidOrigin"
    assert error["messageId"] == "3" and set(error["heading"]) == set(error["note"]) == {"vi", "en"}
    assert "accessToken" not in body.decode() and _token_rows(state) == rows
    # a HEAD request reads nothing: no token is made for it
    port = int(base.rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("HEAD", f"/auth/2/token?messageId=4&origin={quote(VIEWER)}", headers=_cookie(browser))
    assert connection.getresponse().status == 200 and _token_rows(state) == rows
    connection.close()
    # script injection through messageId and origin cannot leave the script
    evil = "</script><script>alert(1)</script><!--\u2028"
    status, _, body, _ = _get(base, f"/auth/2/token?messageId={quote(evil)}&origin={quote(VIEWER)}", **_cookie(browser))
    assert "</script><script>alert" not in body.decode() and body.decode().count("<script") == 1
    assert _message(body, VIEWER)["messageId"] == evil
    status, _, body, _ = _get(
        base, f"/auth/2/token?messageId=4&origin={quote(VIEWER + '</script>')}", **_cookie(browser)
    )
    assert status == 200 and "postMessage" not in body.decode() and "alert" not in body.decode()
    # no cookie: missingAspect; Auth 1.0: the page form with messageId, JSON without
    assert _message(_get(base, f"/auth/2/token?messageId=5&origin={VIEWER}")[2], VIEWER)["profile"] == "missingAspect"
    v1 = _message(_get(base, f"/auth/1/token?messageId=6&origin={VIEWER}", **_cookie(browser))[2], VIEWER)
    assert set(v1) == {"accessToken", "expiresIn", "messageId"} and v1["messageId"] == "6"
    status, headers, body, _ = _get(base, "/auth/1/token", **_cookie(browser))
    assert status == 200 and headers["content-type"] == "application/json" and headers["cache-control"] == "no-store"
    assert set(json.loads(body)) == {"accessToken", "expiresIn"}
    status, _, body, _ = _get(base, "/auth/1/token")
    assert status == 401 and json.loads(body)["error"] == "missingCredentials"


def _token(base: str, **headers: str) -> str:
    message = _message(_get(base, f"/auth/2/token?messageId=t&origin={quote(VIEWER)}", **headers)[2], VIEWER)
    assert message["type"] == "AuthAccessToken2", message
    return str(message["accessToken"])


def _probe(base: str, **headers: str) -> int:
    status, _, body, _ = _get(base, "/auth/2/probe/stele.tif", **headers)
    assert status == 200
    return int(json.loads(body)["status"])


def test_a_token_opens_the_image_until_logout_ends_it_and_the_cookie(site: tuple[str, Path]) -> None:
    base, _ = site
    browser = _login(base)
    token = _token(base, **_cookie(browser))
    bearer = {"Authorization": f"Bearer {token}", "X-Forwarded-For": ADDRESS}
    status, headers, tile, _ = _get(base, TILE, **bearer)
    assert status == 200 and decode(tile).width == 256 and headers["cache-control"].startswith("private")
    assert tile == _get(base, TILE.replace("stele", "open"))[2]  # the master's pixels, not a watermarked view
    info = json.loads(_get(base, "/iiif/3/stele.tif/info.json", **bearer)[2])
    public = json.loads(_get(base, "/iiif/3/open.tif/info.json")[2])
    assert info["maxWidth"] == public["maxWidth"] != 1000  # the full info.json (Auth 1.0 §2.2.5), not degraded
    assert _get(base, TILE)[0] == 401  # anonymous: still refused
    assert _probe(base, **bearer) == 200 and _probe(base) == 401  # the probe (Auth 2.0 §5) reads the token
    # logout by GET, as the viewers open it: the page, the cookie cleared, the token and session dead
    status, headers, body, cookies = _get(base, "/auth/2/logout", **_cookie(browser))
    assert status == 200 and headers["cache-control"] == "no-store" and "Logged out" in body.decode()
    assert any(line.startswith("iiif_session=;") for line in cookies)

    time.sleep(CACHE_SECONDS + 0.3)
    assert _get(base, TILE, **bearer)[0] == 401 and _probe(base, **bearer) == 401
    assert _get(base, TILE, **_cookie(browser))[0] == 401
    assert (
        _message(_get(base, f"/auth/2/token?messageId=x&origin={VIEWER}", **_cookie(browser))[2], VIEWER)["profile"]
        == "expiredAspect"
    )
    # Auth 1.0's logout does the same
    again = _login(base)
    token = _token(base, **_cookie(again))
    assert _get(base, "/auth/1/logout", **_cookie(again))[0] == 200
    time.sleep(CACHE_SECONDS + 0.3)
    assert _get(base, TILE, Authorization=f"Bearer {token}")[0] == 401


def test_the_active_service_closes_its_tab_once_logged_in(site: tuple[str, Path]) -> None:
    base, _ = site
    browser = Browser(base, ADDRESS)
    status, _, page = browser.get(f"/auth/login?origin={quote(VIEWER)}")
    assert status == 200 and f'name="origin" value="{VIEWER}"' in page and "window.close" not in page
    form = {"csrf": browser.csrf(), "username": "alice", "password": PASSWORD, "origin": VIEWER}
    status, headers, _ = browser.post("/auth/login", form)
    assert status == 303 and headers["Location"].endswith(f"/auth/login?origin={quote(VIEWER, safe='')}&lang=vi")
    for path in (f"/auth/login?origin={quote(VIEWER)}", f"/auth/1/login?origin={quote(VIEWER)}"):
        status, headers, page = browser.get(path)
        assert status == 200 and "<script nonce=" in page and "window.close();" in page
        assert "Logged in" in page and "Đã đăng nhập" in page
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"
        assert headers["Cache-Control"] == "no-store"


def test_the_kiosk_service_opens_a_terminal_and_refuses_other_addresses(site: tuple[str, Path]) -> None:
    base, _ = site
    status, headers, body, cookies = _get(base, f"/auth/2/kiosk?origin={quote(VIEWER)}", **{"X-Forwarded-For": KIOSK})
    assert status == 200 and "window.close();" in body.decode() and headers["cache-control"] == "no-store"
    (line,) = [line for line in cookies if line.startswith("iiif_session=")]
    cookie = {"X-Forwarded-For": KIOSK, "Cookie": line.split(";", 1)[0]}
    status, headers, tile, _ = _get(base, TILE, **cookie)
    assert status == 200 and decode(tile).width == 256 and headers["cache-control"].startswith("private")
    token = _token(base, **cookie)
    assert _get(base, TILE, Authorization=f"Bearer {token}", **{"X-Forwarded-For": KIOSK})[0] == 200
    # the terminal's cookie or token carried away from the gallery opens nothing
    assert _get(base, TILE, Authorization=f"Bearer {token}", **{"X-Forwarded-For": ADDRESS})[0] == 401
    assert _get(base, TILE, **{**cookie, "X-Forwarded-For": ADDRESS})[0] == 401
    status, _, body, cookies = _get(base, "/auth/2/kiosk", **{"X-Forwarded-For": ADDRESS})
    assert status == 403 and "Not a gallery terminal" in body.decode() and not cookies
    # a raw X-Forwarded-For from an untrusted peer is not believed
    assert _get(base, "/auth/2/kiosk", source="127.0.0.2", **{"X-Forwarded-For": KIOSK})[0] == 403


def test_the_external_pattern_staff_network_and_trusted_header(site: tuple[str, Path]) -> None:
    base, _ = site
    staff = {"X-Forwarded-For": STAFF}
    status, headers, tile, _ = _get(base, TILE, **staff)
    assert status == 200 and decode(tile).width == 256 and headers["cache-control"].startswith("private")
    token = _token(base, **staff)
    assert _probe(base, **staff) == 200  # the external pattern: no token needed
    assert _get(base, TILE, Authorization=f"Bearer {token}", **staff)[0] == 200
    # a staff network's token carried off the network opens nothing (as a kiosk's)
    assert _get(base, TILE, Authorization=f"Bearer {token}", **{"X-Forwarded-For": ADDRESS})[0] == 401
    # the header, from the trusted proxy, names alice; from another peer, or naming nobody, it is nothing
    named = {"X-Forwarded-For": ADDRESS, "X-Remote-User": "alice"}
    for _ in range(2):  # the second from the worker's memory (the event loop's path)
        assert _get(base, TILE, **named)[0] == 200
    assert _get(base, TILE, **{**named, "Authorization": f"Bearer {_token(base, **named)}"})[0] == 200
    assert _get(base, TILE, source="127.0.0.2", **named)[0] == 401
    refused = _get(base, f"/auth/2/token?messageId=e&origin={base}", source="127.0.0.2", **named)[2]
    assert _message(refused, base)["profile"] == "missingAspect"
    assert _get(base, TILE, **{**named, "X-Remote-User": "mallory"})[0] == 401


# in-process: lifetimes, revocation, what a token is not


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stores(tmp_path: Path) -> tuple[Accounts, Sessions, Tokens, Clock]:
    from argon2 import PasswordHasher

    accounts = Accounts(tmp_path, PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    accounts.add("alice", PASSWORD, ("restricted",))
    clock = Clock()
    sessions = Sessions(accounts, 8 * 3600, clock)
    return accounts, sessions, Tokens(accounts, sessions, 600, clock), clock


def test_a_token_lives_token_seconds_never_beyond_its_session(stores: tuple[Accounts, Sessions, Tokens, Clock]) -> None:
    _, sessions, tokens, clock = stores
    cookie = sessions.create("alice")
    issued = tokens.for_session(cookie, sessions.lookup(cookie))  # type: ignore[arg-type]
    assert issued.expires_in == 600 and tokens.grant(issued.token) == Grant("alice", frozenset({"restricted"}))
    clock.now += 599
    assert tokens.grant(issued.token) is not None
    clock.now += 2
    assert tokens.grant(issued.token) is None
    clock.now = 1_000_000.0 + 8 * 3600 - 100  # 100 s left of the session
    late = tokens.for_session(cookie, sessions.lookup(cookie))  # type: ignore[arg-type]
    assert late.expires_in == 100
    clock.now += 101
    assert tokens.grant(late.token) is None


def test_a_token_dies_with_its_session_or_account(stores: tuple[Accounts, Sessions, Tokens, Clock]) -> None:
    accounts, sessions, tokens, _ = stores
    cookie = sessions.create("alice")
    token = tokens.for_session(cookie, sessions.lookup(cookie)).token  # type: ignore[arg-type]
    credentials = Credentials(sessions, 0, bearer=tokens.grant)
    assert credentials.grant({"HTTP_AUTHORIZATION": f"Bearer {token}"}) is not None
    # a token is no cookie, and a cookie no token
    assert credentials.grant({"HTTP_COOKIE": f"iiif_session={token}"}) is None
    assert credentials.grant({"HTTP_AUTHORIZATION": f"Bearer {cookie}"}) is None
    accounts.set_password("alice", "another-Pa55word-1")
    assert tokens.grant(token) is None
    cookie = sessions.create("alice")
    token = tokens.for_session(cookie, sessions.lookup(cookie)).token  # type: ignore[arg-type]
    assert tokens.end_session(cookie) == 1 and tokens.grant(token) is None
    named = tokens.for_account("alice").token
    assert tokens.grant(named) == Grant("alice", frozenset({"restricted"}))
    accounts.remove("alice")
    assert tokens.grant(named) is None


def test_ambient_grants_on_the_image_path(stores: tuple[Accounts, Sessions, Tokens, Clock]) -> None:
    accounts, sessions, _, _ = stores
    ambient = Ambient(accounts, ["192.0.2.0/24"], ["restricted", "staff"], "X-Remote-User")
    credentials = Credentials(sessions, 60, ambient=ambient)
    # a staff network: no database read, so the event loop's path answers at once
    assert credentials.grant({"REMOTE_ADDR": STAFF}, fast=True) == Grant(
        f"external@{STAFF}", frozenset({"restricted", "staff"})
    )
    assert credentials.grant({"REMOTE_ADDR": ADDRESS}, fast=True) is None
    # the header counts only from a trusted proxy; its account is read once, then remembered
    named = {"REMOTE_ADDR": ADDRESS, "HTTP_X_REMOTE_USER": "alice"}
    assert credentials.grant(named) is None
    with pytest.raises(WouldBlock):
        credentials.grant({**named, PROXIED: True}, fast=True)
    assert credentials.grant({**named, PROXIED: True}) == Grant("alice", frozenset({"restricted"}))
    assert credentials.grant({**named, PROXIED: True}, fast=True) == Grant("alice", frozenset({"restricted"}))
    # a login on the staff network keeps its user and gets both levels
    cookie = sessions.create("alice")
    joined = credentials.grant({"REMOTE_ADDR": STAFF, "HTTP_COOKIE": f"iiif_session={cookie}"})
    assert joined == Grant("alice", frozenset({"restricted", "staff"}))


def test_origins_and_script_values() -> None:
    assert origin_of("https://Viewer.example.org") == "https://viewer.example.org"
    assert origin_of("https://client.example.com/") == "https://client.example.com"  # Auth 1.0's examples
    for bad in ("", "*", "null", "javascript:alert(1)", "https://a.example/path", "https://u@a.example",
                "https://a.example?x", "https://a.example:99999", "https://a.example\n",
                "https://a.example;script-src *", 'https://a.example"'):  # fmt: skip
        assert origin_of(bad) is None, bad
    assert script_json("</script>&\u2028") == '"\\u003c/script\\u003e\\u0026\\u2028"'
