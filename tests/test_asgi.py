"""The ASGI edge in process: what runs on the event loop and what on a thread, and the environ.

Real HTTP against both workers is in tests/presentation/test_served_http.py, test_observability.py,
test_serving.py and test_conformance.py; here the decision itself is observed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import Any

from flask import Flask

from iiif_server.asgi import ASGIEdge, environ_of
from iiif_server.cache.memory import MemoryCache
from iiif_server.cache.tiered import TieredCache
from iiif_server.errors import INLINE
from tests.conftest import block_colour, decode, pixel

TILE = "/iiif/3/pattern.tif/0,0,256,256/251,/0/default.png"  # a size no other test asks for: rendered, then memory


def _scope(path: str, method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"iiif.test"), *(headers or [])],
        "client": ("192.0.2.7", 50000),
        "server": ("127.0.0.1", 8182),
    }


class Recorder:
    """Wraps the WSGI site: where each call ran, and whether it was marked inline."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls.append((threading.current_thread().name, bool(environ.get(INLINE))))
        return self.app(environ, start_response)


def _request(edge: ASGIEdge, scope: dict[str, Any], body: bytes = b"") -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(edge(scope, receive, send))
    start = sent[0]
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


def test_a_memory_held_answer_runs_on_the_loop_the_rest_on_a_thread(app: Flask) -> None:
    recorder = Recorder(app)
    edge = ASGIEdge(recorder, threads=2)
    main = threading.current_thread().name
    try:
        status, headers, first = _request(edge, _scope(TILE))
        # not yet known to this worker: tried inline, refused (WouldBlock), rendered on a thread
        assert status == 200 and recorder.calls[0] == (main, True)
        assert recorder.calls[1][0].startswith("iiif") and not recorder.calls[1][1]
        recorder.calls.clear()
        status, again_headers, again = _request(edge, _scope(TILE))
        assert status == 200 and again == first and again_headers[b"etag"] == headers[b"etag"]
        assert recorder.calls == [(main, True)]  # the memory tier's copy, on the loop
        image = decode(again)
        assert pixel(image, 150, 50) == block_colour(1, 0)
        recorder.calls.clear()
        status, _, empty = _request(edge, _scope(TILE, headers=[(b"if-none-match", headers[b"etag"])]))
        assert (status, empty) == (304, b"") and recorder.calls == [(main, True)]
        recorder.calls.clear()
        status, _, page = _request(edge, _scope("/"))
        assert status == 200 and b"<html" in page.lower()
        assert len(recorder.calls) == 1 and recorder.calls[0][0].startswith("iiif")  # Flask: straight to a thread
        recorder.calls.clear()
        status, _, _ = _request(edge, _scope(TILE, "GET", [(b"content-length", b"3")]), b"abc")
        assert status == 200 and len(recorder.calls) == 1 and recorder.calls[0][0].startswith("iiif")  # a body
    finally:
        edge.pool.shutdown()


def test_the_environ_is_what_gunicorn_gives() -> None:
    scope = _scope(
        "/anh/iiif/3/h\u1ea1c.tif/info.json",
        headers=[
            (b"x-forwarded-for", b"10.0.0.1"),
            (b"x_forwarded_for", b"6.6.6.6"),
            (b"accept", b"a"),
            (b"accept", b"b"),
        ],
    )
    scope.update(root_path="/anh", query_string=b"x=1", raw_path=b"/anh/iiif/3/h%E1%BA%A1c.tif/info.json")
    environ = environ_of(scope)
    assert environ["SCRIPT_NAME"] == "/anh"
    assert environ["PATH_INFO"] == "/iiif/3/h\u1ea1c.tif/info.json".encode().decode("latin-1")
    assert environ["RAW_URI"] == "/anh/iiif/3/h%E1%BA%A1c.tif/info.json?x=1"
    assert environ["REMOTE_ADDR"] == "192.0.2.7" and environ["HTTP_HOST"] == "iiif.test"
    assert environ["HTTP_X_FORWARDED_FOR"] == "10.0.0.1"  # the underscore twin is dropped, as gunicorn does
    assert environ["HTTP_ACCEPT"] == "a,b" and environ["SERVER_PROTOCOL"] == "HTTP/1.1"


def test_peek_is_memory_only_and_leaves_a_due_purge_check_to_a_thread() -> None:
    class Shared:
        def __init__(self) -> None:
            self.reads = 0
            self.current = "1"

        def get(self, key: str) -> bytes | None:
            self.reads += 1
            return None

        def put(self, key: str, value: bytes) -> None: ...

        def purge(self, identifier: str | None = None) -> int:
            return 0

        def epoch(self) -> str:
            self.reads += 1
            return self.current

        def bump_epoch(self) -> None: ...

    shared = Shared()
    tiered = TieredCache(MemoryCache(1 << 20), shared, epoch_interval=3600)
    shared.reads = 0
    tiered.put("g:k", b"v")
    assert tiered.peek("g:k") == b"v" and tiered.peek("g:other") is None
    assert shared.reads == 0
    tiered.epoch_interval = 0  # the purge epoch is due: only a get (on a thread) may look at it
    assert tiered.peek("g:k") is None and shared.reads == 0
    shared.current = "2"  # another host purged
    assert tiered.get("g:k") is None and shared.reads == 2  # epoch moved: memory dropped, shared missed
