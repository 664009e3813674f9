"""Restricted images through a real cluster (bench/cluster/cluster.py): two ``iiif-server serve`` nodes,
Redis as their shared cache tier, HAProxy in front, logins (docs/access.md, docs/scaling.md).

The rule: restricted pixels never reach anyone without a valid session, through any node, the balancer or
the shared tier. What a logged-in client made the nodes render and keep in Redis is asked again, by the
exact same URLs, by an anonymous client on every node and the balancer: it gets the degraded view or a
401, privately cached, never the bytes the session got. A login through the balancer (the form, the
Auth 2.0 token service and probe) opens the images on whichever node answers when the nodes share
``[access] state_dir``; on machines sharing nothing, HAProxy's sticky cookie keeps a session on its node,
and without it a request landing on the other node is refused, never granted. A logout through the
balancer ends the session on every node sharing the state.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.access_site import get
from tests.cluster.test_cluster import REPO, _load
from tests.conftest import decode
from tests.test_access_flow import _message
from tests.test_access_login import Browser

bc = _load()
pytestmark = pytest.mark.skipif(
    not Path(bc.HAPROXY).exists() or not shutil.which("redis-server"),
    reason="needs Debian's haproxy and redis-server (the README's test command installs both)",
)
SIZE, DEGRADED = 2048, 1000  # the harness's images; [access] degraded_size (the default)
PASSWORD = "lan-Pa55word-2026"
CACHE_SECONDS = 0.5  # [access] session_cache_seconds: how long a worker trusts what it read of a session
RESTRICTED = "/iiif/3/obj-3.tif"
FULL = f"{RESTRICTED}/full/max/0/default.jpg"
TILE = f"{RESTRICTED}/0,0,256,256/256,/0/default.jpg"  # full resolution: 401 for anonymous clients
SMALL = f"{RESTRICTED}/full/500,/0/default.png"  # within the degraded size: watermarked for anonymous clients
INFO = f"{RESTRICTED}/info.json"
PROBE = "/auth/2/probe/obj-3.tif"
ADDRESS = "203.0.113.7"


STAFF = "192.0.2.9"  # in [access] external_networks of the shared cluster: open with no login


def _access(shared_state: bool, staff: str = "", header: str = "") -> Any:
    return bc.Access(
        accounts=(("lan", PASSWORD),), shared_state=shared_state, session_cache_seconds=CACHE_SECONDS,
        external_networks=staff, external_header=header,
    )  # fmt: skip


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Nodes on one host: one ``[access] state_dir`` (and one manifests state) for both."""
    folder = tmp_path_factory.mktemp("cluster-access")
    with bc.cluster(
        nodes=2, workers=1, folder=folder, access=_access(True, "192.0.2.0/24", "X-Remote-User")
    ) as running:
        yield running


def _login(base: str) -> Browser:
    """The login form (GET for its CSRF token, POST), as a browser does it through ``base``."""
    browser = Browser(base, ADDRESS)
    status, headers, _ = browser.login("lan", PASSWORD)
    assert status == 303 and "iiif_session" in browser.cookies, headers
    return browser


def _session(browser: Browser) -> dict[str, str]:
    """The session cookie alone (no balancer cookie): what any node is shown."""
    return {"Cookie": f"iiif_session={browser.cookies['iiif_session']}"}


def _jar(browser: Browser) -> str:
    """Every cookie the browser holds, HAProxy's SERVERID included."""
    return "; ".join(f"{name}={value}" for name, value in browser.cookies.items() if value)


def _token(base: str, browser: Browser) -> str:
    """The Auth 2.0 access token service, asked by the server's own origin (always allowed)."""
    status, _, page = browser.get(f"/auth/2/token?messageId=c1&origin={base}")
    assert status == 200, page
    message = _message(page.encode(), base)
    assert message["type"] == "AuthAccessToken2", message
    return str(message["accessToken"])


def _probe(base: str, **headers: str) -> int:
    status, _, body = get(base, PROBE, **headers)
    assert status == 200, body
    return int(json.loads(body)["status"])


def _head(base: str, path: str) -> int:
    connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
    try:
        connection.request("HEAD", path)
        return connection.getresponse().status
    finally:
        connection.close()


def _private(headers: dict[str, str]) -> None:
    control = headers.get("cache-control", "")
    assert control.startswith(("private", "no-store")) and "public" not in control, headers


def _anonymous_gets_only_the_degraded_view(base: str, authorised: dict[str, tuple[bytes, str]]) -> None:
    """Every exact URL the session had, asked with no credentials (and with the session's ETags)."""
    full, full_etag = authorised[FULL]
    for conditional in ({}, {"If-None-Match": full_etag}):
        status, headers, body = get(base, FULL, **conditional)
        assert status == 200 and body != full, (base, status)
        assert max(decode(body).width, decode(body).height) == DEGRADED
        assert headers["etag"] != full_etag
        _private(headers)
    tile, tile_etag = authorised[TILE]
    for conditional in ({}, {"If-None-Match": tile_etag}):
        status, headers, body = get(base, TILE, **conditional)
        assert status == 401 and tile not in body and not body.startswith(b"\xff\xd8"), (base, status)
        assert "www-authenticate" in headers
        _private(headers)
    small, _ = authorised[SMALL]
    status, headers, body = get(base, SMALL)
    assert status == 200 and decode(body).width == 500 and body != small
    _private(headers)
    # the watermark: the anonymous view differs from the session's pixels, visibly
    difference = (decode(body)[:3] - decode(small)[:3]).abs().bandmean()
    marked = (difference > 24).avg() / 255  # the share of pixels the mark changed
    assert difference.max() > 60 and marked > 0.01, (difference.max(), marked)
    status, headers, body = get(base, INFO)
    assert status == 302 and headers["location"].endswith("/iiif/3/obj-3.tif~preview/info.json"), headers
    _private(headers)
    assert _probe(base) == 401


def test_what_a_session_made_the_nodes_cache_in_redis_never_reaches_an_anonymous_client(shared: Any) -> None:
    first, second = shared.nodes
    session = _session(_login(shared.url))
    authorised: dict[str, tuple[bytes, str]] = {}
    for path, width in ((FULL, SIZE), (TILE, 256), (SMALL, 500)):
        status, headers, body = get(first.url, path, **session)
        assert status == 200 and decode(body).width == width, (path, status, body[:200])
        _private(headers)
        authorised[path] = body, headers["etag"]
    status, headers, body = get(first.url, INFO, **session)
    assert status == 200 and json.loads(body)["width"] == SIZE
    _private(headers)
    # they are in the shared tier: the other node serves them to the session without rendering
    before = bc.renders(second)
    for path, (body, _) in authorised.items():
        assert get(second.url, path, **session)[2] == body
    assert bc.renders(second) == before
    # now anonymous, on the node that rendered them, the other one, and the balancer (both nodes)
    for base in (second.url, first.url, shared.url, shared.url):
        _anonymous_gets_only_the_degraded_view(base, authorised)
    # a client claiming the staff network in its own X-Forwarded-For: the balancer appends the real
    # address and the node reads that one; the same header from the balancer's address opens the image
    claims = ({"X-Forwarded-For": STAFF}, {"Forwarded": f"for={STAFF}"}, {"Forwarded": f'for="{STAFF}";proto=https'})
    for claim in claims * 2:
        status, headers, body = get(shared.url, TILE, **claim)
        assert status == 401 and not body.startswith(b"\xff\xd8"), (claim, status)
    assert get(second.url, TILE, **{"X-Forwarded-For": STAFF})[0] == 200  # as if the balancer had said so
    # a client naming an account in [access] external_header: the balancer removes it (the nodes believe
    # it from the balancer, as from an authenticating proxy)
    for _ in range(2):
        assert get(shared.url, TILE, **{"X-Remote-User": "lan"})[0] == 401
    assert get(first.url, TILE, **{"X-Remote-User": "lan"})[0] == 200  # as if the balancer had set it
    # HEAD and Image API 2.1: the same decision
    for base in (first.url, second.url, shared.url):
        assert _head(base, TILE) == 401
        status, _, body = get(base, TILE.replace("/iiif/3/", "/iiif/2/"))
        assert status == 401 and not body.startswith(b"\xff\xd8")
        status, _, body = get(base, "/iiif/2/obj-3.tif/full/full/0/default.jpg")
        assert status == 401 or (status == 200 and max(decode(body).width, decode(body).height) <= DEGRADED)
    # a cookie that is not a live session is anonymous too, on every node
    for base in (first.url, second.url, shared.url):
        assert get(base, TILE, Cookie="iiif_session=forged-0123456789abcdef")[0] == 401
    # and the other way round: what the anonymous client made them render is not the session's answer
    status, _, body = get(second.url, f"{RESTRICTED}/full/400,/0/default.png")
    assert status == 200
    status, headers, mine = get(first.url, f"{RESTRICTED}/full/400,/0/default.png", **session)
    assert status == 200 and mine != body and decode(mine).width == 400
    _private(headers)


def test_a_login_through_the_balancer_opens_every_node_sharing_the_state_until_logout(shared: Any) -> None:
    browser = _login(shared.url)
    token = _token(shared.url, browser)
    bearer = {"Authorization": f"Bearer {token}"}
    for base in [node.url for node in shared.nodes] + [shared.url] * 4:
        for credentials in (_session(browser), bearer):
            assert _probe(base, **credentials) == 200
            status, headers, tile = get(base, TILE, **credentials)
            assert status == 200 and decode(tile).width == 256, (base, status)
            _private(headers)
        status, _, body = get(base, INFO, **bearer)
        assert status == 200 and json.loads(body)["width"] == SIZE
    sent = {name: int(row["stot"]) for name, row in shared.server_stats().items()}
    assert all(count > 0 for count in sent.values()), sent  # the balancer used both nodes
    session = _session(browser)
    status, _, _ = browser.get("/auth/2/logout")  # through the balancer: one node ends it for all
    assert status == 200 and browser.cookies.get("iiif_session") == ""
    time.sleep(CACHE_SECONDS + 0.3)
    for base in [node.url for node in shared.nodes] + [shared.url] * 2:
        for credentials in (session, bearer):
            assert get(base, TILE, **credentials)[0] == 401
            assert _probe(base, **credentials) == 401


def _home(running: Any, session: dict[str, str]) -> tuple[Any, Any]:
    """(the node that holds the session, the other): asked directly, only one grants it."""
    granted = [node for node in running.nodes if _probe(node.url, **session) == 200]
    assert len(granted) == 1, granted
    (other,) = [node for node in running.nodes if node is not granted[0]]
    return granted[0], other


def test_machines_sharing_nothing_keep_a_session_on_its_node_with_the_sticky_cookie(tmp_path: Path) -> None:
    with bc.cluster(nodes=2, workers=1, folder=tmp_path / "c", access=_access(False), sticky=True) as running:
        assert all((running.folder / n.name / "access" / "accounts.sqlite3").exists() for n in running.nodes)
        fresh = [Browser(running.url, ADDRESS) for _ in range(2)]
        for browser in fresh:
            browser.get("/auth/login")
        assert {browser.cookies["SERVERID"] for browser in fresh} == {"node1", "node2"}  # round-robin
        # a public tile: the answer that sets the balancer's cookie is marked private (nocache), later ones not
        public = "/iiif/3/obj-1.tif/0,0,256,256/256,/0/default.jpg"
        status, headers, _ = get(running.url, public)
        assert status == 200 and headers["cache-control"] == "private" and "SERVERID" in headers["set-cookie"]
        status, headers, _ = get(running.url, public, Cookie="SERVERID=node2")
        assert status == 200 and headers["cache-control"] == "public, max-age=86400" and "set-cookie" not in headers
        browser = _login(running.url)
        home, other = _home(running, _session(browser))
        assert browser.cookies["SERVERID"] == home.name
        token = _token(running.url, browser)
        for _ in range(20):  # every request through the balancer lands on the session's node
            assert _probe(running.url, Cookie=_jar(browser)) == 200
            status, headers, tile = get(running.url, TILE, Cookie=_jar(browser))
            assert status == 200 and decode(tile).width == 256
            _private(headers)
            assert get(running.url, TILE, Cookie=_jar(browser), Authorization=f"Bearer {token}")[0] == 200
        assert int(running.server_stats()[home.name]["stot"]) > int(running.server_stats()[other.name]["stot"]) + 40
        # the other machine never heard of it: refused there, never granted
        assert get(other.url, TILE, **_session(browser))[0] == 401
        assert get(other.url, TILE, Authorization=f"Bearer {token}")[0] == 401
        # a viewer on another site sends the token without the balancer's cookie: not pinned, so the
        # requests the balancer gives the other node are refused
        bearer = Counter(get(running.url, TILE, Authorization=f"Bearer {token}")[0] for _ in range(10))
        assert set(bearer) == {200, 401}, bearer
        # the same account logs in on the other node too: its own session there
        other_browser = Browser(running.url, ADDRESS)
        other_browser.cookies["SERVERID"] = other.name
        assert other_browser.login("lan", PASSWORD)[0] == 303
        assert _home(running, _session(other_browser))[0] is other
        # logout through the balancer reaches the session's node and ends it there
        session = _session(browser)
        assert browser.get("/auth/2/logout")[0] == 200
        time.sleep(CACHE_SECONDS + 0.3)
        assert all(_probe(node.url, **session) == 401 for node in running.nodes)
        assert _probe(other.url, **_session(other_browser)) == 200  # another session, untouched
        # its node lost: the balancer sends the browser to the other node, which refuses the session
        other.kill()
        running.wait_status(other.name, "DOWN")
        for _ in range(3):
            assert get(running.url, TILE, Cookie=_jar(other_browser))[0] == 401
        assert _probe(running.url, Cookie=_jar(other_browser)) == 401


def test_machines_sharing_nothing_without_sticky_refuse_a_session_on_the_other_node(tmp_path: Path) -> None:
    with bc.cluster(nodes=2, workers=1, folder=tmp_path / "c", access=_access(False)) as running:
        browser = _login(running.url)  # the form's GET and POST may land on either node: CSRF is stateless
        assert "SERVERID" not in browser.cookies
        session = _session(browser)
        home, other = _home(running, session)
        outcomes: Counter[int] = Counter()
        for _ in range(20):
            status, headers, body = get(running.url, TILE, **session)
            outcomes[status] += 1
            if status == 200:
                assert decode(body).width == 256
            else:
                assert status == 401 and not body.startswith(b"\xff\xd8")
            _private(headers)
        print(f"sharing nothing, no sticky cookie: {dict(outcomes)} for 20 requests of one session")
        assert set(outcomes) == {200, 401} and outcomes[401] >= 5, outcomes  # round-robin: about half refused
        assert get(other.url, TILE, **session)[0] == 401 and get(home.url, TILE, **session)[0] == 200


def test_the_haproxy_lines_in_the_docs_are_the_ones_the_harness_generates() -> None:
    """docs/scaling.md's HAProxy block, sticky and external_header lines included, is what the tests ran."""
    doc = (REPO / "docs" / "scaling.md").read_text().split("generates exactly this):\n\n")[1].split("\n\n")[0]
    nodes = [bc.Node("node1", 8001, "writer", Path("1.log")), bc.Node("node2", 8002, "reader", Path("2.log"))]
    generated = bc.haproxy_config(80, Path("s.sock"), nodes, sticky=True, removed=("X-Remote-User",))

    def lines(text: str) -> set[str]:
        kept = (line.split("   #")[0].split("  #")[0].strip() for line in text.splitlines())
        return {re.sub(r"[\d.]*:\d+\b", "ADDRESS", line) for line in kept if line and not line.startswith("#")}

    documented = lines(doc)
    assert len(documented) > 20 and documented - lines(generated) == set()
