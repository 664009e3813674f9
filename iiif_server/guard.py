"""Slow and idle clients, oversized heads: uvicorn's httptools protocol with deadlines and limits.

uvicorn arms no timer on a connection until it has answered a request, and httptools keeps any
amount of request line and headers: a socket that connects and sends nothing, or a byte of a
request line every few seconds, stays open (an fd and a protocol object) for as long as the
client likes, and an endless header grows the worker's memory. ``GuardedProtocol`` adds:

- a **head deadline**: a request's head (request line and headers) must be complete within
  ``[server] header_timeout`` seconds of the connection opening, or, on a kept-alive connection,
  of the head's first byte; else 408 (if any of the head came) and the connection is closed;
- **size limits**: a request target over ``MAX_TARGET`` bytes is a 414, a header block over
  ``MAX_HEADER_BYTES`` or over ``MAX_HEADERS`` fields a 431, checked as the bytes arrive;
- a **cap on waiting connections** per worker (idle ones and ones whose head is still arriving,
  ``[server] max_connections``): over it, the oldest idle connection is closed, then the oldest
  with a head still arriving (503), and only if no other is waiting the newcomer itself;
- the server's **own errors** (those, and httptools' "invalid HTTP request") answered like every
  other error of the site (``http.closing_error``: one line, CORS, nosniff) instead of uvicorn's.

Requests whose heads are complete are uvicorn's as before (``wire.ReplayProtocol`` comes next in
the method order). Relies on uvicorn's protocol internals like wire.py (``cycle``, ``pipeline``,
``timeout_keep_alive_task``, ``connections``, ``send_400_response``).
"""

from __future__ import annotations

from asyncio import TimerHandle
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import ServerSettings
from .http import closing_error

MAX_TARGET = 8 * 1024  # bytes of the request target (414 beyond)
MAX_HEADER_BYTES = 16 * 1024  # bytes of the header block (431 beyond)
MAX_HEADERS = 100  # header fields (431 beyond)
#: A head still incomplete after this many bytes is refused even before its fields are parsed
#: (a header line without an end): the request line and the header block at their limits.
MAX_HEAD_BYTES = MAX_TARGET + MAX_HEADER_BYTES + 64


_SERVER = ServerSettings()  # the defaults, stated once in config.py


@dataclass(frozen=True)
class ConnectionLimits:
    """The per-worker settings ``GuardedProtocol`` reads from the app it serves (``app.limits``)."""

    header_timeout: float = _SERVER.header_timeout
    max_connections: int = _SERVER.max_connections


class _Refused(Exception):
    """Raised in a parser callback to stop the parse; the answer is ``GuardedProtocol._refusal``."""


class Waiting:
    """A worker's connections not busy with a request, oldest first: ``idle`` ones (new, or kept
    alive after an answer) and ``partial`` ones (a head arriving). Dicts keep insertion order."""

    def __init__(self) -> None:
        self.idle: dict[GuardedProtocol, None] = {}
        self.partial: dict[GuardedProtocol, None] = {}

    def __len__(self) -> int:
        return len(self.idle) + len(self.partial)

    def discard(self, protocol: GuardedProtocol) -> None:
        self.idle.pop(protocol, None)
        self.partial.pop(protocol, None)


def _waiting(server_state: Any) -> Waiting:
    """The worker's one ``Waiting``, kept on uvicorn's per-server state."""
    waiting = getattr(server_state, "iiif_waiting", None)
    if waiting is None:
        waiting = Waiting()
        server_state.iiif_waiting = waiting
    return waiting


class GuardedProtocol(HttpToolsProtocol):  # type: ignore[misc]
    """See the module's docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits: ConnectionLimits = getattr(self.app, "limits", None) or ConnectionLimits()
        self.waiting = _waiting(self.server_state)
        self._head_timer: TimerHandle | None = None
        self._in_head = False  # a head has begun and is not complete
        self._head_bytes = 0  # bytes of it received (an upper bound)
        self._heads_begun = 0
        self._header_bytes = 0
        self._refusal: tuple[int, str] | None = None

    # the connection
    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.waiting.idle[self] = None
        self._arm_head_timer()  # the first head is due within header_timeout of the opening
        if len(self.waiting) > self.limits.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        self.waiting.discard(self)
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        in_head, begun = self._in_head, self._heads_begun
        super().data_received(data)  # cancels the keep-alive timer, parses
        if self.transport.is_closing() or self._busy():
            return
        if self._in_head:
            if in_head and begun == self._heads_begun:
                self._head_bytes += len(data)
            else:  # it began in this chunk: after the last complete head, at the latest
                end = data.rfind(b"\n\r\n")
                self._head_bytes = len(data) - (end + 3 if end >= 0 else 0)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, f"request head larger than {MAX_HEAD_BYTES} bytes")
                return
            if self in self.waiting.idle:
                del self.waiting.idle[self]
                self.waiting.partial[self] = None
        if self._head_timer is None and self.timeout_keep_alive_task is None:
            self._arm_head_timer()  # the first bytes of a head on a kept-alive connection

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self._busy():
            self.waiting.idle[self] = None

    # the parser's callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._heads_begun += 1
        self._head_bytes = 0
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_TARGET:
            self._refusal = (414, f"request target longer than {MAX_TARGET} bytes")
            raise _Refused

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._header_bytes += len(name) + len(value) + 4
        if len(self.headers) > MAX_HEADERS:
            self._refusal = (431, f"more than {MAX_HEADERS} header fields")
            raise _Refused
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refusal = (431, f"header fields larger than {MAX_HEADER_BYTES} bytes")
            raise _Refused

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        self.waiting.discard(self)
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a head the parser refused (or a callback above stopped)."""
        status, message = self._refusal or (400, "invalid HTTP request")
        self._refuse(status, message)

    # the rest
    def _refuse(self, status: int, message: str) -> None:
        """Answer an error of the server's own and close: the connection cannot continue."""
        self.waiting.discard(self)
        self._cancel_head_timer()
        if not self.transport.is_closing():
            self.transport.write(closing_error(status, message))
            self.transport.close()

    def _busy(self) -> bool:
        return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_late)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self._busy():
            return
        if self._in_head:
            self._refuse(408, f"request head not received within {self.limits.header_timeout:g} s")
        else:  # nothing sent: close quietly (a 408 would be taken for the answer to a next request)
            self.waiting.discard(self)
            self.transport.close()

    def _make_room(self) -> None:
        """Over the cap: close the oldest idle connection, else the oldest partial head, else this one."""
        for victim in self.waiting.idle:
            if victim is not self:
                self.waiting.discard(victim)
                victim._cancel_head_timer()
                victim.transport.close()
                return
        for victim in self.waiting.partial:
            if victim is not self:
                victim._refuse(503, "too many open connections; try again")
                return
        self._refuse(503, "too many open connections; try again")
