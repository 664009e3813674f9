"""uvicorn's HTTP protocol (httptools), with replayed answers written straight to the socket.

Through the ASGI edge a replayed answer (replay.py) still costs uvicorn's machinery per request:
a ``RequestResponseCycle`` with its ``asyncio.Event``, a task on the loop, two ``send`` calls
whose headers are checked by regular expressions, and two socket writes, several times the
replay's own work. When a request's headers are complete, ``ReplayProtocol`` asks the edge's
``Replay`` the same question (the same lookup: the access policy for the answer's file, its
fingerprint and the purge generation) and, on a hit, writes the status line, uvicorn's own
default headers (``Date``), the kept headers and the body in one write, then counts and logs
the request through the edge like any replay.

Everything else goes through uvicorn unchanged: a miss, HTTP/1.0 or ``Connection: close``, an
upgrade, a request pipelined behind one still in flight, and any request while the client is
not reading (the transport's write buffer over its high-water mark: uvicorn waits for it).
``WireProtocol``, the worker's protocol, puts guard.py's ``GuardedProtocol`` (head deadline, size
limits, connection cap) in front of it in the method order. The class relies on uvicorn's
protocol internals (``cycle``, ``pipeline``, ``flow``, ``server_state``, ``on_response_complete``);
pyproject.toml bounds uvicorn's version, and the tests drive it over real sockets (keep-alive,
pipelining, HEAD, Connection: close).
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .guard import GuardedProtocol
from .replay import LOOKED_UP

_OK = b"HTTP/1.1 200 OK\r\n"


class _Settled:
    """``message_event`` of an answered request: nobody waits for it."""

    def set(self) -> None:
        pass


class _Answered:
    """Stands for uvicorn's cycle of a request answered here: complete, so the parser's later
    callbacks for it (``on_body``, ``on_message_complete``), ``shutdown`` and ``connection_lost``
    leave it alone."""

    response_complete = True
    message_event = _Settled()


_ANSWERED = _Answered()


class ReplayProtocol(HttpToolsProtocol):  # type: ignore[misc]
    def on_headers_complete(self) -> None:
        if not self._replayed():
            super().on_headers_complete()

    def _replayed(self) -> bool:
        edge: Any = self.app
        replay = getattr(edge, "replay", None)
        parser = self.parser
        if (
            replay is None
            or (self.cycle is not None and not self.cycle.response_complete)
            or self.pipeline
            or self.flow.write_paused
            or parser.get_http_version() != "1.1"
            or not parser.should_keep_alive()
            or parser.should_upgrade()
        ):
            return False
        method = parser.get_method()
        if method != b"GET" and method != b"HEAD":
            return False
        started, arrived = time.perf_counter(), time.time()
        url = httptools.parse_url(self.url)
        path = url.path.decode("ascii")
        scope: Any = self.scope  # uvicorn types it; we add LOOKED_UP to it
        scope["method"] = method.decode("ascii")
        scope["path"] = urllib.parse.unquote(path) if "%" in path else path
        scope["raw_path"] = url.path
        scope["query_string"] = url.query or b""
        answer, request = replay.lookup(scope)
        if answer is None:
            scope[LOOKED_UP] = request  # the edge keeps the answer it is about to make, asks nothing twice
            return False
        date = b"".join(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers)
        if method == b"GET":
            self.transport.write(b"".join((_OK, date, answer.head, answer.body["body"])))
        else:
            self.transport.write(b"".join((_OK, date, answer.head)))
        self.cycle = _ANSWERED  # type: ignore[assignment]  # a stand-in, see _Answered
        self.on_response_complete()  # counts it (max_requests); re-arms the keep-alive timeout
        edge.replayed(scope, answer, started, arrived, request)
        return True


class WireProtocol(GuardedProtocol, ReplayProtocol):
    """The worker's protocol: heads guarded (deadline, sizes, connection cap: guard.py), then replays."""
