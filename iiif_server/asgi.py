"""The ASGI edge: the WSGI site under uvicorn's worker, cheap answers on the event loop.

``[server] worker = "asgi"`` runs gunicorn with uvicorn's worker class (httptools parses
HTTP, uvloop drives the sockets: C where gthread runs pure Python). The site stays the one
WSGI stack ``create_app`` builds (metrics, access log, forwarded headers, image endpoint,
Flask), so every answer, header and error is the same in both modes. This module only
converts an ASGI request into a WSGI environ and decides where the stack runs:

- **inline**, on the event loop, without a thread handoff: a GET/HEAD/OPTIONS without a
  body under ``/iiif/3/`` or ``/iiif/2/`` (or ``/health/live``), marked ``INLINE``. The image endpoint then
  answers only from memory (known layout, open pass-through reader, memory tier, 304) and
  raises ``WouldBlock`` for anything else, before it has answered or been counted;
- **on a thread** of a pool of ``[server] threads`` (so the lanes' rule about free threads
  holds as under gthread): everything else, and inline attempts that raised ``WouldBlock``:
  renders, Redis and disk-cache lookups, first opens of a file, Flask pages, request bodies.

The loop never waits on Redis, the disk cache or libvips. Answers the image endpoint gave from
memory are kept by ``replay`` and sent again for identical requests without running the stack
at all (after the access policy has been asked; see replay.py): a hot tile or info.json costs
a few µs of Python instead of ~80.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from a2wsgi.wsgi import Body
from uvicorn_worker import UvicornWorker

from .accesslog import Entry
from .errors import CANCEL, INLINE, WouldBlock
from .guard import ConnectionLimits
from .replay import LOOKED_UP, Answer, Replay, Request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Response = tuple[int, list[tuple[bytes, bytes]], bytes]
Record = Callable[[str, int, int, float, "str | None", Callable[[], Entry]], None]

_INLINE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def environ_of(scope: Scope) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) of an ASGI HTTP scope, as gunicorn would build it.

    Paths are latin-1 code points of their UTF-8 bytes; ``SCRIPT_NAME`` is ``root_path``;
    ``RAW_URI`` keeps the request target for the access log. Like gunicorn, header names
    with ``_`` are dropped: ``X_Forwarded_For`` must not pose as ``X-Forwarded-For``.
    ``wsgi.input`` is set by the caller.
    """
    script_name = scope.get("root_path", "").encode("utf-8").decode("latin-1")
    path = scope["path"].encode("utf-8").decode("latin-1")
    if script_name and path.startswith(script_name):
        path = path[len(script_name) :]
    query = scope.get("query_string", b"").decode("latin-1")
    raw = scope.get("raw_path") or scope["path"].encode("utf-8")
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "RAW_URI": raw.decode("latin-1") + (f"?{query}" if query else ""),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] or 0),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,  # uvicorn de-chunks bodies: read to the end, not by length
    }
    client = scope.get("client")
    if client:
        environ["REMOTE_ADDR"] = client[0]
        environ["REMOTE_PORT"] = str(client[1])
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1")
        if "_" in name:
            continue
        key = {"content-length": "CONTENT_LENGTH", "content-type": "CONTENT_TYPE"}.get(name)
        key = key or "HTTP_" + name.upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    return environ


def pool_thread(nice: int) -> None:
    """Pool thread initializer (Linux only: elsewhere ``PRIO_PROCESS`` would renice the whole process).

    The thread, and the libvips threads it starts (they inherit it), runs ``nice`` steps below the
    event loop, so under CPU load the loop's answers from memory (cached tiles, info.json) keep their
    latency while renders wait their turn (bench/attack.py, scenario ``heavy``). It is also named
    ``iiif-pool`` for the OS, so ``top -H`` and ``ps -L`` tell it from the loop."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_NAME, b"iiif-pool", 0, 0, 0)
    if nice:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


_PR_SET_NAME = 15


def inline_candidate(environ: dict[str, Any]) -> bool:
    """Worth trying on the loop: an image-endpoint (or liveness) request with no body.

    Manifests, pages, readiness and metrics never are: they would only raise ``WouldBlock``
    after a wasted attempt (the image endpoint refuses inline work it cannot do, as a guard).
    """
    path = environ["PATH_INFO"]
    return (
        environ["REQUEST_METHOD"] in _INLINE_METHODS
        and (path.startswith(("/iiif/3/", "/iiif/2/")) or path == "/health/live")
        and not has_body(environ)
    )


def has_body(environ: dict[str, Any]) -> bool:
    return environ.get("CONTENT_LENGTH", "0") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in environ


class ASGIEdge:
    """ASGI application around a WSGI one; see the module's docstring."""

    def __init__(
        self,
        app: WSGIApp,
        threads: int,
        replay: Replay | None = None,
        record: Record | None = None,
        limits: ConnectionLimits | None = None,
        thread_nice: int = 0,
    ) -> None:
        self.app = app
        self.pool = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="iiif", initializer=pool_thread, initargs=(thread_nice,)
        )
        self.replay = replay
        self.record = record  # Observed.record: counts and logs the replayed answers
        self.limits = limits or ConnectionLimits()  # read by the worker's protocol (guard.py)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":  # websockets: nothing here speaks them
            await send({"type": "websocket.close", "code": 1000})
            return
        request: Request | None = None
        if LOOKED_UP in scope:  # wire.py asked the replay this instant, and missed
            request = scope[LOOKED_UP]
        elif self.replay is not None:
            started, arrived = time.perf_counter(), time.time()
            answer, request = self.replay.lookup(scope)
            if answer is not None:
                await send(answer.start)
                await send(answer.body if scope["method"] == "GET" else _NO_CONTENT)
                self.replayed(scope, answer, started, arrived, request)
                return
        environ = environ_of(scope)
        if inline_candidate(environ):
            try:
                response = self._inline(environ)
            except WouldBlock:
                environ = environ_of(scope)  # the inner layers may have rewritten the first one
            else:
                if request is not None and self.replay is not None:
                    self.replay.keep(request, *response, environ)
                await _send(send, response)
                return
        await self._pooled(environ, receive, send)

    def replayed(self, scope: Scope, answer: Answer, started: float, arrived: float, request: Request | None) -> None:
        if self.record is None or request is None:
            return
        method = scope["method"]
        sent = answer.size if method != "HEAD" else 0
        duration = time.perf_counter() - started

        def entry() -> Entry:
            query = scope.get("query_string", b"")
            target = (scope.get("raw_path") or scope["path"].encode()) + (b"?" + query if query else b"")
            return Entry(
                client=answer.client or (scope.get("client") or ("-",))[0],
                time=arrived,
                method=method,
                target=target.decode("latin-1"),
                protocol=f"HTTP/{scope.get('http_version', '1.1')}",
                status=200,
                bytes=sent,
                duration=duration,
                tier=answer.tier,
                referer=request.referer,
                user_agent=request.user_agent,
            )

        self.record(scope["path"], 200, sent, duration, answer.tier, entry)

    def _inline(self, environ: dict[str, Any]) -> Response:
        environ[INLINE] = True
        environ["wsgi.input"] = _NO_BODY
        started: list[Any] = []
        body = self.app(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
        try:
            content = b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return _status(started[-1][0]), _headers(started[-1][1]), content

    async def _pooled(self, environ: dict[str, Any], receive: Receive, send: Send) -> None:
        """The stack on a pool thread. A request without a body has nothing more to receive but
        ``http.disconnect``: that is watched for while the thread works, and sets ``CANCEL``, which
        stops its render (unless other clients wait for the same one; see cache/flight.py)."""
        loop = asyncio.get_running_loop()
        watcher: asyncio.Task[None] | None = None
        if has_body(environ):
            environ["wsgi.input"] = Body(loop, receive)  # type: ignore[arg-type]  # a2wsgi's narrower message types
        else:
            environ["wsgi.input"] = _NO_BODY
            gone = environ[CANCEL] = threading.Event()
            watcher = loop.create_task(_disconnected(receive, gone))

        async def sending(message: Message) -> None:
            await send(message)

        def send_from_thread(message: Message) -> None:
            asyncio.run_coroutine_threadsafe(sending(message), loop).result()

        try:
            response = await loop.run_in_executor(self.pool, self._run, environ, send_from_thread)
        finally:
            if watcher is not None:
                watcher.cancel()
        if response is not None:
            await _send(send, response)

    def _run(self, environ: dict[str, Any], send: Callable[[Message], None]) -> Response | None:
        """The WSGI call on a pool thread. A list body (the usual case) goes back to the loop
        whole; any other iterable is streamed from here, chunk by chunk, as it is produced."""
        started: list[Any] = []
        body = self.app(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
        try:
            if isinstance(body, list):
                return _status(started[-1][0]), _headers(started[-1][1]), b"".join(body)
            head_sent = False

            def send_head() -> None:  # once the first chunk exists: start_response may come late
                status, headers = started[-1]
                send({"type": "http.response.start", "status": _status(status), "headers": _headers(headers)})

            for chunk in body:
                if not chunk:
                    continue
                if not head_sent:
                    send_head()
                    head_sent = True
                send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not head_sent:
                send_head()
            send({"type": "http.response.body", "body": b"", "more_body": False})
            return None
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.pool.shutdown(wait=True, cancel_futures=False)
                await send({"type": "lifespan.shutdown.complete"})
                return


class _NoBody:
    """``wsgi.input`` of an inline request, which has no body by construction."""

    def read(self, size: int = -1) -> bytes:
        return b""

    def readline(self, size: int = -1) -> bytes:
        return b""

    def __iter__(self) -> Any:
        return iter(())


_NO_BODY = _NoBody()


async def _disconnected(receive: Receive, gone: threading.Event) -> None:
    """Set ``gone`` when the client disconnects. After the (empty) request message, the next one can
    only be ``http.disconnect`` (the ASGI spec); anything else ends the watch rather than spin on it."""
    message = await receive()
    while message["type"] == "http.request" and message.get("more_body"):
        message = await receive()
    if message["type"] == "http.request":
        message = await receive()
    if message["type"] == "http.disconnect":
        gone.set()


_NO_CONTENT: Message = {"type": "http.response.body", "body": b"", "more_body": False}  # a HEAD's body


def _status(line: str) -> int:
    return int(line[:3])


def _headers(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


async def _send(send: Send, response: Response) -> None:
    status, headers, body = response
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _exit_normally(signum: int, frame: Any) -> None:
    sys.exit(0)


class Worker(UvicornWorker):  # type: ignore[misc]
    """gunicorn's worker class for ``[server] worker = "asgi"``: uvicorn (httptools, uvloop).

    uvicorn's own proxy-header handling is off (``iiif_server.forwarded`` alone decides whom to
    believe), as are its access log (``observe`` writes ours) and its ``Server`` header.
    """

    def init_signals(self) -> None:
        """uvicorn re-raises the signal that stopped it once it has shut down; with the default
        action the process would die there, before its exit handlers (the access log's last
        batch). Exit normally instead."""
        super().init_signals()
        for stop in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(stop, _exit_normally)

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "auto",  # uvloop when installed (it is a dependency)
        "http": "iiif_server.wire:WireProtocol",  # httptools, heads guarded, replays written straight to the socket
        "proxy_headers": False,
        "access_log": False,
        "server_header": False,
    }
