"""The outermost WSGI layer: health probes, ``/metrics``, request metrics and the access log.

It sits outside the forwarded-headers middleware on purpose: ``/metrics`` is allowed by the
address that connected (``REMOTE_ADDR`` as the socket gave it, ``[metrics] allow``), never by
what a header claims; and a request carrying ``Forwarded``/``X-Forwarded-For`` came through a
proxy, so it is refused even from an allowed address (nginx on 127.0.0.1 would otherwise
expose the metrics to everyone it proxies for). The log line shows the client address the
inner layers settled on (a trusted proxy's ``for=``).

The work per request is a few dictionary lookups, two clock reads, one histogram observation
and one line appended to a batch (``LineWriter``); the logic lives in ``metrics``, ``health``
and ``accesslog``, which know no web framework.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import accesslog, metrics
from .errors import TIER, WouldBlock
from .forwarded import Network, trusted
from .health import Readiness
from .http import NOSNIFF

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Headers = list[tuple[str, str]]

NO_STORE = ("Cache-Control", "no-store")
PIPE_BUF = 4096  # POSIX: a write of at most this many bytes to a pipe is never interleaved with another


class LineWriter:
    """Access log lines to a file descriptor (stdout), batched: at most a second late, whole lines.

    Through ``logging`` a line cost 7-12 µs of the request's time (record, caller lookup, lock,
    flush syscall); appending to a list costs well under one. A daemon thread writes the batch
    every ``interval`` seconds, a full batch is written at once, and what is left goes out at exit.
    Each ``os.write`` holds whole lines and at most PIPE_BUF bytes, so the lines of several
    workers sharing one pipe (systemd, containers) never interleave.
    """

    def __init__(self, fd: int = 1, interval: float = 1.0) -> None:
        self.fd = fd
        self.interval = interval
        self._lines: list[str] = []
        self._size = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        atexit.register(self.flush)

    def write(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)
            self._size += len(line) + 1
            full = self._size >= PIPE_BUF
            thread = None
            if self._thread is None:  # started in the worker, after the fork, by its first request
                thread = self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        if thread is not None:
            thread.start()
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            lines, self._lines, self._size = self._lines, [], 0
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            data = line.encode("utf-8", "backslashreplace") + b"\n"
            if chunk and size + len(data) > PIPE_BUF:
                self._write(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(data)
            size += len(data)
        if chunk:
            self._write(b"".join(chunk))

    def _write(self, data: bytes) -> None:
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:
            pass  # stdout closed or full: losing log lines must not fail requests

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()


class Observed:
    """WSGI middleware around the whole site."""

    def __init__(
        self,
        app: WSGIApp,
        readiness: Readiness,
        metrics_enabled: bool = True,
        metrics_allow: Sequence[str] = ("127.0.0.1", "::1"),
        metrics_dir: Path | None = None,
        access_log: str = "combined",
    ) -> None:
        self.app = app
        self.readiness = readiness
        self.metrics_enabled = metrics_enabled
        self.allow: list[Network] = [ipaddress.ip_network(entry, strict=False) for entry in metrics_allow]
        self.metrics_dir = metrics_dir
        self.format = {"combined": accesslog.combined, "json": accesslog.as_json}.get(access_log)
        self.log = LineWriter() if self.format is not None else None
        self.tally = metrics.Tally()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not self.metrics_enabled and self.format is None:
            return self._route(environ, start_response)
        started = time.perf_counter()
        arrived = time.time()
        path = environ.get("PATH_INFO", "")
        status = [500]

        def capture(line: str, headers: Headers, exc_info: Any = None) -> Any:
            status[0] = int(line[:3])
            return start_response(line, headers, exc_info)

        note, token = metrics.begin()
        try:
            body = self._route(environ, capture)
        except WouldBlock:
            raise  # not answered: the edge runs it again on a thread, counted and logged there
        except BaseException:
            self._finish(environ, path, 500, 0, started, arrived, note.tier)
            raise
        finally:
            metrics.end(token)
        if isinstance(body, list):
            self._finish(environ, path, status[0], sum(map(len, body)), started, arrived, note.tier)
            return body
        return _Counted(body, lambda sent: self._finish(environ, path, status[0], sent, started, arrived, note.tier))

    def _finish(
        self,
        environ: dict[str, Any],
        path: str,
        status: int,
        sent: int,
        started: float,
        arrived: float,
        tier: str | None,
    ) -> None:
        environ[TIER] = tier  # for the edge's replay of this answer (replay.py)
        duration = time.perf_counter() - started
        sent = sent if environ.get("REQUEST_METHOD") != "HEAD" else 0
        self.record(
            path,
            status,
            sent,
            duration,
            tier,
            lambda: accesslog.Entry(
                client=environ.get("REMOTE_ADDR") or "-",
                time=arrived,
                method=environ.get("REQUEST_METHOD", "-"),
                target=request_target(environ),
                protocol=environ.get("SERVER_PROTOCOL", "-"),
                status=status,
                bytes=sent,
                duration=duration,
                tier=tier,
                referer=environ.get("HTTP_REFERER", ""),
                user_agent=environ.get("HTTP_USER_AGENT", ""),
            ),
        )

    def record(
        self, path: str, status: int, sent: int, duration: float, tier: str | None, entry: Callable[[], accesslog.Entry]
    ) -> None:
        """Count one answered request and log it (``entry`` is built only when the log is on).

        Also called by the ASGI edge for the answers it replays without running this stack.
        """
        if self.metrics_enabled:
            kind = metrics.kind_of(path, tier)
            image = tier is not None and kind in ("tile", "render") and status in (200, 304)
            self.tally.add(kind, status, duration, tier if image else None)
        if self.log is not None and self.format is not None:
            self.log.write(self.format(entry()))

    # -- the endpoints answered here ---------------------------------------------------------

    def _route(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/health/live":
            return _answer(environ, start_response, 200, [("Content-Type", "text/plain; charset=utf-8")], b"ok\n")
        if path == "/health/ready":
            ready, body = self.readiness.run()
            headers = [("Content-Type", "application/json")]
            if not ready:
                headers.append(("Retry-After", str(self.readiness.retry_after)))
            return _answer(environ, start_response, 200 if ready else 503, headers, body)
        if path == "/metrics" and self.metrics_enabled:
            return self._metrics(environ, start_response)
        return self.app(environ, start_response)

    def _metrics(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        proxied = "HTTP_FORWARDED" in environ or "HTTP_X_FORWARDED_FOR" in environ
        if proxied or not trusted(environ.get("REMOTE_ADDR"), self.allow):
            body = b"metrics are not served to this address ([metrics] allow)\n"
            return _answer(environ, start_response, 403, [("Content-Type", "text/plain; charset=utf-8")], body)
        self.tally.flush()  # this worker's latest; the others' are at most a second late
        body, media_type = metrics.exposition(self.metrics_dir)
        return _answer(environ, start_response, 200, [("Content-Type", media_type)], body)


def _answer(
    environ: dict[str, Any], start_response: StartResponse, status: int, headers: Headers, body: bytes
) -> list[bytes]:
    """Probes and scrapes: GET or HEAD, never cached by anyone."""
    method = environ.get("REQUEST_METHOD", "GET")
    if method not in ("GET", "HEAD"):
        status, headers, body = 405, [("Allow", "GET, HEAD"), ("Content-Type", "text/plain")], b"method not allowed\n"
    headers = [*headers, ("Content-Length", str(len(body))), NO_STORE, NOSNIFF]
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [b"" if method == "HEAD" else body]


def request_target(environ: dict[str, Any]) -> str:
    """The request target as the client sent it, for the access log and the audit log."""
    return environ.get("RAW_URI") or _target(environ)


def _target(environ: dict[str, Any]) -> str:
    """The request target when the server did not keep it (gunicorn does, as RAW_URI)."""
    path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1", "replace")
    query = environ.get("QUERY_STRING", "")
    return quote(path, safe="/:@!$&'()*+,;=-._~") + (f"?{query}" if query else "")


class _Counted:
    """A streamed body: counts what is sent and reports when the server closes it."""

    def __init__(self, body: Iterable[bytes], done: Callable[[int], None]) -> None:
        self.body = body
        self.done = done
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.done(self.sent)
