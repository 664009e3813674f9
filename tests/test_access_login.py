"""Issue 12, accounts and logging in: `iiif-server users`, sessions and /auth/login (real gunicorn, real HTTP).

Before, there were no accounts (`iiif-server users` was no command) and /auth/login was a 404.
"""

from __future__ import annotations

import http.client
import os
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import date, timedelta
from email.message import Message
from pathlib import Path
from urllib.parse import urlencode

import pytest

from iiif_server.access.accounts import Accounts
from iiif_server.access.login import safe_return
from iiif_server.access.sessions import Sessions
from iiif_server.check import free_port, running_server
from tests.access_site import IIIF_SERVER, add_user, cli
from tests.conftest import demo_env

PASSWORDS = {"alice": "alice-Pa55word-12", "bob": "bob-Pa55word-345", "carol": "carol-Pa55word-6789"}
MAX_FAILURES = 3
Response = tuple[int, Message, str]


def _request(
    base: str, method: str, path: str, headers: dict[str, str] | None = None, form: dict | None = None
) -> Response:
    connection = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=30)
    body = urlencode(form) if form is not None else None
    headers = {**(headers or {}), **({"Content-Type": "application/x-www-form-urlencoded"} if form else {})}
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read().decode()
    finally:
        connection.close()


def _cookie(headers: Message, name: str) -> str:
    """The whole Set-Cookie line for ``name`` (attributes included)."""
    lines = [line for line in headers.get_all("Set-Cookie") or [] if line.startswith(f"{name}=")]
    assert len(lines) == 1, headers.get_all("Set-Cookie")
    return lines[0]


def _value(cookie_line: str) -> str:
    return cookie_line.split(";", 1)[0].split("=", 1)[1]


class Browser:
    """One client address (via the trusted proxy's X-Forwarded-For) with its cookie jar."""

    def __init__(self, base: str, address: str, proto: str = "http") -> None:
        self.base, self.cookies = base, {}
        self.headers = {"X-Forwarded-For": address, "X-Forwarded-Proto": proto}

    def get(self, path: str) -> Response:
        return self._keep(_request(self.base, "GET", path, self._with_cookies()))

    def post(self, path: str, form: dict[str, str], **headers: str) -> Response:
        return self._keep(_request(self.base, "POST", path, {**self._with_cookies(), **headers}, form))

    def csrf(self) -> str:
        status, _, page = self.get("/auth/login")
        assert status == 200
        match = re.search(r'name="csrf" value="([^"]+)"', page)
        assert match and match.group(1) == self.cookies["iiif_login_csrf"]
        return match.group(1)

    def login(self, username: str, password: str, **extra: str) -> Response:
        form = {"csrf": self.csrf(), "username": username, "password": password, **extra}
        return self.post("/auth/login", form)

    def _with_cookies(self) -> dict[str, str]:
        jar = "; ".join(f"{k}={v}" for k, v in self.cookies.items() if v)
        return {**self.headers, **({"Cookie": jar} if jar else {})}

    def _keep(self, response: Response) -> Response:
        for line in response[1].get_all("Set-Cookie") or []:
            name, value = line.split(";", 1)[0].split("=", 1)
            self.cookies[name] = value
        return response


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """A server with three accounts made by the CLI; trusts 127.0.0.1 as a proxy (test addresses)."""
    base = tmp_path_factory.mktemp("login")
    state, images, log = base / "state", base / "images", base / "server.log"
    images.mkdir()
    for name, password in PASSWORDS.items():
        add_user(state, name, "restricted", password, "--name", f"{name.title()} Nguyễn")
    env = {
        "IIIF_SERVER_ACCESS_STATE_DIR": str(state),
        "IIIF_SERVER_ACCESS_LOGIN_MAX_FAILURES": str(MAX_FAILURES),
        "IIIF_SERVER_SERVER_TRUSTED_PROXIES": "127.0.0.1",
    }
    with running_server(["serve", "--images", str(images), "--workers", "1"], free_port(), env, log=log) as url:
        yield url, state, log


def test_users_command_adds_lists_changes_and_removes_accounts_without_showing_passwords(tmp_path: Path) -> None:
    state, password, new = tmp_path / "state", "first-Secret-4242", "second-Secret-9191"
    added = cli(state, "users", "add", "lan", "--levels", "restricted,staff", "--expires", "2031-12-31",
                "--name", "Lan Trần", "--password-stdin", stdin=password + "\n")  # fmt: skip
    assert (added.returncode, added.stdout) == (0, "added lan: levels restricted,staff, until 2031-12-31\n")
    listed = cli(state, "users", "list")
    assert listed.returncode == 0
    assert re.search(r"^lan\s+Lan Trần\s+restricted,staff\s+2031-12-31\s+\d{4}-", listed.stdout, re.M)
    assert (state / "accounts.sqlite3").stat().st_mode & 0o077 == 0  # hashes: for the owner only
    accounts = Accounts(state)
    assert accounts.verify("lan", password) is not None and accounts.verify("lan", new) is None
    token = Sessions(accounts, 3600).create("lan")

    changed = cli(state, "users", "passwd", "lan", "--password-stdin", stdin=new + "\n")
    assert (
        changed.returncode == 0 and accounts.verify("lan", new) is not None and accounts.verify("lan", password) is None
    )
    assert Sessions(accounts, 3600).lookup(token) is None  # a new password ends the old sessions

    errors = {
        "exists": cli(state, "users", "add", "lan", "--levels", "restricted", "--password-stdin", stdin=new + "\n"),
        "short": cli(state, "users", "add", "minh", "--levels", "restricted", "--password-stdin", stdin="short\n"),
        "date": cli(
            state, "users", "add", "minh", "--levels", "restricted", "--expires", "31/12/2031", "--password-stdin"
        ),
        "level": cli(state, "users", "add", "minh", "--levels", "Hạn chế!", "--password-stdin", stdin=new + "\n"),
        "unknown": cli(state, "users", "remove", "nobody"),
        "passwd-unknown": cli(state, "users", "passwd", "nobody", "--password-stdin", stdin=new + "\n"),
    }
    for case, result in errors.items():
        assert result.returncode == 1 and result.stderr.count("\n") == 1, (case, result.stderr)
        assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    as_argument = cli(state, "users", "add", "minh", "--levels", "restricted", "--password", new)
    assert as_argument.returncode == 2 and "No such option" in as_argument.stderr  # never on a command line

    assert cli(state, "users", "remove", "lan").stdout == "removed lan\n"
    assert cli(state, "users", "list").stdout == "no accounts\n"
    everything = "".join(r.stdout + r.stderr for r in [added, listed, changed, *errors.values()])
    assert password not in everything and new not in everything and "$argon2" not in everything


def test_login_page_in_both_languages_cannot_be_framed_or_cached(site: tuple[str, Path, Path]) -> None:
    base = site[0]
    status, headers, page = _request(base, "GET", "/auth/login")
    assert status == 200 and '<html lang="vi">' in page and "Đăng nhập" in page and "Mật khẩu" in page
    assert 'hreflang="en"' in page and "<script" not in page  # a plain form: no JavaScript needed
    assert headers["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "same-origin"
    assert headers["Cache-Control"] == "no-store"
    csrf = _cookie(headers, "iiif_login_csrf")
    assert "HttpOnly" in csrf and "SameSite=Strict" in csrf and "Path=/auth" in csrf
    status, _, page = _request(base, "GET", "/auth/login?lang=en&return=/viewer")
    assert status == 200 and '<html lang="en">' in page and "Log in" in page and "Password" in page
    assert 'name="return" value="/viewer"' in page and 'href="/auth/login?lang=vi&amp;return=%2Fviewer"' in page


def test_posts_without_the_csrf_token_or_from_another_site_are_refused(site: tuple[str, Path, Path]) -> None:
    base = site[0]
    browser = Browser(base, "198.51.100.20")
    form = {"username": "alice", "password": PASSWORDS["alice"]}
    csrf = browser.csrf()
    refused = [
        browser.post("/auth/login", form),  # no token in the form
        _request(base, "POST", "/auth/login", browser.headers, {**form, "csrf": csrf}),  # no cookie
        browser.post("/auth/login", {**form, "csrf": csrf[::-1]}),  # not the cookie's
        browser.post("/auth/login", {**form, "csrf": csrf}, Origin="https://evil.example"),
    ]
    for status, headers, body in refused:
        assert status == 403 and "iiif_session" not in (headers.get("Set-Cookie") or ""), body
        assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"
    assert "CSRF" in refused[0][2] and "cross-site" in refused[3][2]
    status, headers, _ = browser.post("/auth/login", {**form, "csrf": csrf}, Origin=base)
    assert status == 303  # its own origin is fine


def test_login_sets_the_session_cookie_and_logout_ends_the_session(site: tuple[str, Path, Path]) -> None:
    base, state, log = site
    sessions = Sessions(Accounts(state), 8 * 3600)
    browser = Browser(base, "198.51.100.30")
    status, headers, _ = browser.login("alice", PASSWORDS["alice"], **{"return": "/viewer?manifest=iiif%2Fx"})
    assert status == 303 and headers["Location"] == "/viewer?manifest=iiif%2Fx"
    cookie = _cookie(headers, "iiif_session")
    assert re.fullmatch(
        r"iiif_session=[A-Za-z0-9_-]{43}; Expires=[^;]+; Max-Age=28800; HttpOnly; Path=/; SameSite=Lax", cookie
    )
    token = _value(cookie)
    session = sessions.lookup(token)
    assert session is not None and session.username == "alice" and session.levels == ("restricted",)
    assert 27000 < session.expires - session.created <= 28800
    _, _, page = browser.get("/auth/login?lang=en")
    assert "You are logged in as Alice Nguyễn." in page and "Log out" in page
    status, headers, _ = browser.login("alice", PASSWORDS["alice"])  # again, from the same browser
    assert status == 303 and sessions.lookup(token) is None  # the old session ended: no fixation, no leftovers
    token = _value(_cookie(headers, "iiif_session"))
    assert sessions.lookup(token) is not None

    status, headers, _ = browser.post("/auth/logout", {"csrf": browser.cookies["iiif_login_csrf"], "lang": "en"})
    assert status == 303 and headers["Location"] == "/auth/login?lang=en"
    cleared = _cookie(headers, "iiif_session")
    assert cleared.startswith("iiif_session=;") and "Max-Age=0" in cleared and "Path=/" in cleared
    assert sessions.lookup(token) is None  # dead server-side, whatever the browser keeps
    browser.cookies["iiif_session"] = token  # a copy kept by an attacker
    assert "logged in" not in browser.get("/auth/login?lang=en")[2]

    over_https = Browser(base, "198.51.100.31", proto="https")
    status, headers, _ = over_https.login("alice", PASSWORDS["alice"])
    assert status == 303 and headers["Location"] == "/"
    secure = _cookie(headers, "iiif_session")
    assert "; Secure" in secure and "SameSite=None" in secure and "HttpOnly" in secure
    assert "Secure" in _cookie(over_https.get("/auth/login")[1], "iiif_login_csrf")
    text = log.read_text()
    assert "login: account 'alice' from 198.51.100.30" in text and PASSWORDS["alice"] not in text
    assert token not in text


def test_a_removed_or_expired_account_has_no_session(tmp_path: Path) -> None:
    state = tmp_path / "state"
    accounts = Accounts(state)
    sessions = Sessions(accounts, 3600)
    accounts.add("dung", "dung-Pa55word-1", ("restricted",), expires=date.today() + timedelta(days=1))
    token = sessions.create("dung")
    assert sessions.lookup(token) is not None
    accounts.add("old", "old-Pa55word-11", ("restricted",), expires=date.today() - timedelta(days=1))
    assert accounts.verify("old", "old-Pa55word-11") is None
    assert sessions.lookup(sessions.create("old")) is None
    with accounts.connect() as conn:  # levels changed under a live session: lookup gives them as they are now
        conn.execute("""UPDATE accounts SET levels = '["restricted", "staff"]' WHERE username = 'dung'""")
    session = sessions.lookup(token)
    assert session is not None and session.levels == ("restricted", "staff")
    assert cli(state, "users", "remove", "dung").returncode == 0
    assert sessions.lookup(token) is None and not sessions.end(token)
    assert sessions.lookup("") is None and sessions.lookup("x" * 10_000) is None
    with accounts.connect() as conn:  # only hashes are stored: the token itself is nowhere in the file
        assert token not in str(conn.execute("SELECT * FROM sessions").fetchall())


def test_an_unknown_name_costs_as_much_as_a_wrong_password(tmp_path: Path) -> None:
    """One argon2 verification either way (a dummy hash for unknown names): timing tells no names."""
    accounts = Accounts(tmp_path)
    accounts.add("existing", "existing-Pa55word", ("restricted",))

    def fastest(name: str) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            assert accounts.verify(name, "wrong-password-1") is None
            times.append(time.perf_counter() - start)
        return min(times)

    fastest("nobody")  # the dummy hash is made on first use
    ratio = fastest("nobody") / fastest("existing")
    assert 0.5 < ratio < 2, ratio  # without the dummy: about 0.01 (a database lookup against a hash)


@pytest.mark.parametrize(
    "target",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil.example", "javascript:alert(1)",
     "evil.example", "/%0d%0aSet-Cookie:x=1\r\nX: y", "///evil.example"],
)  # fmt: skip
def test_return_never_leaves_the_site(target: str) -> None:
    assert safe_return(target, "/") == "/"


def test_open_redirects_are_refused_over_http(site: tuple[str, Path, Path]) -> None:
    browser = Browser(site[0], "198.51.100.40")
    for target in ["//evil.example/x", "https://evil.example/", "/\\evil.example", "/\t/evil.example"]:
        status, headers, _ = browser.login("carol", PASSWORDS["carol"], **{"return": target})
        assert (status, headers["Location"]) == (303, "/"), target
    status, headers, _ = browser.login("carol", PASSWORDS["carol"], **{"return": "/iiif/3/a%2Fb/info.json?x=1"})
    assert headers["Location"] == "/iiif/3/a%2Fb/info.json?x=1"


def test_wrong_passwords_are_throttled_per_account_and_per_address(site: tuple[str, Path, Path]) -> None:
    base, _, log = site
    # per account: each guess from another address
    for n in range(MAX_FAILURES):
        status, _, page = Browser(base, f"203.0.113.{n}").login("bob", f"guess-{n}-wrong")
        assert status == 403 and "Sai tên đăng nhập hoặc mật khẩu" in page
    status, headers, page = Browser(base, "203.0.113.99").login("bob", PASSWORDS["bob"])  # right, yet refused
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= 300 and "iiif_session" not in str(headers)
    assert "Quá nhiều lần đăng nhập sai" in page

    # per address: one address guessing several accounts
    guesser = Browser(base, "2001:db8:7:7::1")
    for name in ("nobody", "carol", "someone"):
        assert guesser.login(name, "not-the-password")[0] == 403
    neighbour = Browser(base, "2001:db8:7:7::2")  # the same /64
    status, headers, _ = neighbour.login("carol", PASSWORDS["carol"])
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert Browser(base, "203.0.113.200").login("carol", PASSWORDS["carol"])[0] == 303  # carol is not blocked

    text = log.read_text()
    assert "login: failed for account 'bob' from 203.0.113.0 (1 from the address, 1 for the account" in text
    assert "login: account:bob blocked for 300 s after 3 failures" in text
    assert "login: 2001:db8:7:7::/64 blocked for 300 s after 3 failures" in text
    assert "guess-" not in text and "not-the-password" not in text and PASSWORDS["bob"] not in text


def test_demo_makes_its_account_once_and_serve_makes_none(
    demo_root: Path, site: tuple[str, Path, Path], tmp_path: Path
) -> None:
    """`iiif-server demo` prints demo-researcher's password on its first run only; it logs in."""
    state = site[1]
    assert [a.username for a in Accounts(state).all()] == sorted(PASSWORDS)  # `serve` made no demo account
    demo_state = tmp_path / "demo-state"
    env = demo_env(demo_root, demo_state)
    logs = [demo_state.parent / "first.log", demo_state.parent / "second.log"]
    with running_server(["demo", "--workers", "1"], free_port(), env, log=logs[0]) as url:
        match = re.search(r"demo account \(demo only;.*\): demo-researcher / (\S+)\n", logs[0].read_text())
        assert match, logs[0].read_text()[-2000:]
        status, headers, _ = Browser(url, "127.0.0.1").login("demo-researcher", match.group(1))
        assert status == 303 and _value(_cookie(headers, "iiif_session"))
    accounts = Accounts(demo_state)
    assert [(a.username, a.levels) for a in accounts.all()] == [("demo-researcher", ("restricted",))]
    listed = subprocess.run(
        [IIIF_SERVER, "users", "list", "--demo"],
        env={**os.environ, "IIIF_SERVER_CONFIG": os.devnull, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "demo-researcher" in listed.stdout and match.group(1) not in listed.stdout
    with running_server(["demo", "--workers", "1"], free_port(), env, log=logs[1]):
        pass
    assert "demo-researcher /" not in logs[1].read_text()  # shown once
