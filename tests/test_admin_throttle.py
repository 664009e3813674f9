"""Issue 11: wrong admin tokens are throttled per client address, logged and counted (real gunicorn).

Before, a client could try tokens as fast as the server answered 401s (about 1 000 a second).
Now, after ``[admin] max_failures`` wrong tokens from one address, that address gets 429 and
Retry-After for ``block_seconds``, whatever it sends; the address is the one the app trusts.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from contextlib import AbstractContextManager
from email.message import Message
from pathlib import Path

import pytest

from iiif_server.check import free_port, running_server
from iiif_server.throttle import Throttle, client_key

TOKEN = "s3cret-admin-token-issue-11"
BLOCK = 3


def _post(base: str, headers: dict[str, str]) -> tuple[int, Message, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=30)
    try:
        connection.request("POST", "/admin/cache/purge", headers=headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read()  # header names in any case
    finally:
        connection.close()


def _metric(base: str, reason: str) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=30)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    match = re.search(rf'^iiif_admin_auth_failures_total\{{reason="{reason}"\}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def _env(**extra: str) -> dict[str, str]:
    return {"IIIF_SERVER_ADMIN_TOKEN": TOKEN, "IIIF_SERVER_ADMIN_BLOCK_SECONDS": str(BLOCK), **extra}


def _serve(image_root: Path, env: dict[str, str], log: Path) -> AbstractContextManager[str]:
    return running_server(["serve", "--images", str(image_root), "--workers", "1"], free_port(), env, log=log)


def test_an_address_guessing_tokens_is_blocked_then_let_back(image_root: Path, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with _serve(image_root, _env(), log) as base:
        for attempt in range(5):
            # X-Forwarded-For from an untrusted peer changes nothing: the address stays 127.0.0.1
            spoofed = {"X-Forwarded-For": f"198.51.100.{attempt}"}
            status, headers, _ = _post(base, {"Authorization": f"Bearer guess-{attempt}", **spoofed})
            assert status == 401 and "error=invalid_token" in headers["WWW-Authenticate"]
        status, headers, body = _post(base, {"Authorization": "Bearer guess-5"})
        assert status == 429 and 1 <= int(headers["Retry-After"]) <= BLOCK
        assert re.fullmatch(rb"too many wrong admin tokens from this address; try again in \d s\n", body)
        assert headers["Content-Type"].startswith("text/plain") and headers["X-Content-Type-Options"] == "nosniff"
        # the right token too: checking it during the block would tell a guesser when it guessed right
        assert _post(base, {"Authorization": f"Bearer {TOKEN}"})[0] == 429
        assert _post(base, {})[0] == 429
        assert (_metric(base, "wrong"), _metric(base, "throttled")) == (5, 3)

        time.sleep(BLOCK + 0.2)
        status, _, body = _post(base, {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and json.loads(body) == {"purged": json.loads(body)["purged"], "identifier": None}
        assert _post(base, {"Authorization": "Bearer guess-6"})[0] == 401  # a fresh count after the block
    text = log.read_text()
    assert len(re.findall(r"admin: wrong bearer token from 127\.0\.0\.1 \(\d within 3 s\)", text)) == 6
    assert "admin: 127.0.0.1 blocked for 3 s after 5 wrong tokens" in text
    assert "guess-" not in text and TOKEN not in text  # never a token in the log


def test_behind_a_trusted_proxy_each_forwarded_client_counts_alone(image_root: Path, tmp_path: Path) -> None:
    env = _env(IIIF_SERVER_SERVER_TRUSTED_PROXIES="127.0.0.1,::1")
    log = tmp_path / "server.log"
    with _serve(image_root, env, log) as base:
        guesser, admin = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "203.0.113.8"}
        statuses = [_post(base, {"Authorization": f"Bearer guess-{n}", **guesser})[0] for n in range(6)]
        assert statuses == [401] * 5 + [429]
        assert _post(base, {"Authorization": f"Bearer {TOKEN}", **admin})[0] == 200
        assert _post(base, {"Authorization": f"Bearer {TOKEN}", **guesser})[0] == 429
    assert "admin: 203.0.113.7 blocked for 3 s after 5 wrong tokens" in log.read_text()


def test_throttle_counts_per_period_and_forgets_the_oldest_address() -> None:
    now = [0.0]
    throttle = Throttle(3, 60.0, max_addresses=2, clock=lambda: now[0])
    assert [throttle.failed("a") for _ in range(2)] == [1, 2] and throttle.blocked_for("a") == 0
    now[0] = 61.0  # the period passed: counted afresh
    assert throttle.failed("a") == 1
    assert [throttle.failed("a") for _ in range(2)] == [2, 3] and throttle.blocked_for("a") == 60
    now[0] = 100.5
    assert throttle.blocked_for("a") == 21
    throttle.succeeded("b")
    throttle.failed("b"), throttle.failed("c")  # a third address evicts "a", the least recently used
    assert throttle.blocked_for("a") == 0 and len(throttle._state) == 2
    assert Throttle(0, 60.0).failed("x") == 1 and Throttle(0, 60.0).blocked_for("x") == 0  # 0: never blocks


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        (None, "unknown"),
    ],
)
def test_ipv6_clients_count_by_their_64(address: str | None, key: str) -> None:
    assert client_key(address) == key
