"""Other web sites for the browser tests: a museum's article pages, a viewer's page, served from a
port of their own on this machine (another origin than the server's), by a real HTTP server in a
thread, stopped when the test is done."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that keeps the test output clean."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def page_server(handler: Callable[..., BaseHTTPRequestHandler], host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``handler`` on a free port of 127.0.0.1; yields the origin as ``http://{host}:{port}``
    (``localhost`` names another site than the image server's ``127.0.0.1``)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def static_site(
    folder: Path, host: str = "127.0.0.1", extra: Mapping[str, Path] | None = None
) -> contextlib.AbstractContextManager[str]:
    """The files of ``folder`` (and ``extra``: URL path -> file elsewhere) as a web site."""
    files = dict(extra or {})

    class Files(SimpleHTTPRequestHandler, QuietHandler):
        def translate_path(self, path: str) -> str:
            found = files.get(urlsplit(path).path)
            return str(found) if found is not None else super().translate_path(path)

    return page_server(functools.partial(Files, directory=str(folder)), host)
