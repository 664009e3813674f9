"""gunicorn's threaded worker with request heads read by its main loop, not by its threads.

gunicorn's ``gthread`` hands every new connection to a pool thread, which waits up to 5 s for
a first byte and then reads the head with blocking calls and no deadline: a few sockets per
thread that send a byte now and then hold every thread, and every other request waits behind
them (measured: 1 000 slowloris or idle sockets, every normal request timed out). ``Worker``
reads heads the way the ASGI worker does (guard.py), in the main loop, without blocking:

- a thread gets a connection only once its head is complete (``\\r\\n\\r\\n`` seen), for a new
  connection and for each next request on a kept-alive one;
- a head must be whole within ``[server] header_timeout`` of the connection opening, or of its
  first byte on a kept-alive connection (408, then closed; an idle one is closed quietly), and
  not longer than ``guard.MAX_HEAD_BYTES`` (431);
- at most ``[server] max_connections`` connections wait (kept alive, or a head arriving): over
  it the oldest kept-alive one is closed, then the oldest silent one, then the oldest partial
  head (503), the newcomer last;
- the server's own errors (gunicorn's parser: bad request line, 414, 431 …) are the site's one
  line of text with CORS and nosniff (``http.closing_error``), not gunicorn's HTML page.

A request body is still read by the thread, with blocking calls: nginx in front buffers bodies.
Relies on gunicorn's ``ThreadWorker`` internals (``poller``, ``keepalived_conns``, ``nr_conns``,
``enqueue_req``, ``murder_pending``, ``TConn``); pyproject.toml bounds gunicorn's version.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import time
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import TConn, ThreadWorker

from .guard import MAX_HEAD_BYTES, MAX_HEADER_BYTES, MAX_HEADERS
from .http import REASONS, closing_error

#: gunicorn's limits in these words (serving.gunicorn_options sets them).
_MESSAGES = {
    400: "invalid HTTP request",
    414: "request line longer than 8190 bytes",
    431: f"more than {MAX_HEADERS} header fields, or one larger than {MAX_HEADER_BYTES} bytes",
}


class _Conn(TConn):  # type: ignore[misc]
    """A connection and the bytes of the head read so far by the main loop."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.head = bytearray()
        self.deadline = 0.0


class _Captured:
    """Stands for the client socket while gunicorn's ``handle_error`` picks the status (and logs)."""

    status = 500

    def gettimeout(self) -> float:
        return 0.0

    def sendall(self, data: bytes) -> None:
        self.status = int(data[9:12])


class Worker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's worker class for ``[server] worker = "gthread"``; see the module's docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        server = self.app.settings.server  # serving._Gunicorn's Settings
        self.header_timeout: float = server.header_timeout
        self.max_connections: int = server.max_connections
        self.heads: dict[_Conn, None] = {}  # connections whose head is arriving, oldest first

    def accept(self, listener: Any) -> None:
        try:
            sock, address = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = _Conn(self.cfg, sock, address, listener.getsockname())  # non-blocking
        self._await_head(conn)
        if len(self.heads) + len(self.keepalived_conns) > self.max_connections:
            self._make_room(conn)

    def on_client_socket_readable(self, conn: _Conn, client: Any) -> None:
        """A kept-alive connection's next head begins: read it here too, under a fresh deadline."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await_head(conn)

    def handle(self, conn: _Conn) -> Any:
        """On a pool thread: the parser reads the head from the bytes the main loop read."""
        if conn.head:
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(bytes(conn.head))
            conn.head = bytearray()
        return super().handle(conn)

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        while self.heads:
            conn = next(iter(self.heads))
            if conn.deadline > now and self.alive:  # a stopping worker waits for no head
                break
            if conn.head:
                self._close(conn, closing_error(408, f"request head not received within {self.header_timeout:g} s"))
            else:
                self._close(conn)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """gunicorn picks the status (and logs it); the answer is the site's one-line error."""
        captured = _Captured()
        super().handle_error(req, captured, addr, exc)
        message = _MESSAGES.get(captured.status) or REASONS.get(captured.status, "error")
        with contextlib.suppress(OSError):
            util.write_nonblock(client, closing_error(captured.status, message))

    def _await_head(self, conn: _Conn) -> None:
        conn.deadline = time.monotonic() + self.header_timeout
        self.heads[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._head_readable, conn))

    def _head_readable(self, conn: _Conn, client: Any) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        conn.head += data
        if b"\r\n\r\n" in conn.head:  # a head ended by bare LFs never is: 408
            self.poller.unregister(conn.sock)
            del self.heads[conn]
            conn.data_ready = True
            self.enqueue_req(conn)
        elif len(conn.head) > MAX_HEAD_BYTES:
            self._close(conn, closing_error(431, f"request head larger than {MAX_HEAD_BYTES} bytes"))

    def _make_room(self, newcomer: _Conn) -> None:
        """Over the cap: the oldest kept-alive connection, else the oldest silent one, else the
        oldest partial head, else the newcomer."""
        if self.keepalived_conns:
            self._close_oldest_kept_alive()
            return
        silent = next((conn for conn in self.heads if not conn.head and conn is not newcomer), None)
        if silent is not None:
            self._close(silent)
            return
        partial_head = next((conn for conn in self.heads if conn is not newcomer), newcomer)
        self._close(partial_head, closing_error(503, "too many open connections; try again"))

    def _close_oldest_kept_alive(self) -> None:
        conn = self.keepalived_conns.popleft()
        with contextlib.suppress(OSError, KeyError, ValueError):
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()

    def _close(self, conn: _Conn, answer: bytes = b"") -> None:
        self.heads.pop(conn, None)
        with contextlib.suppress(OSError, KeyError, ValueError):
            self.poller.unregister(conn.sock)
        if answer:
            with contextlib.suppress(OSError):
                conn.sock.send(answer)
        self.nr_conns -= 1
        conn.close()
