"""Masters on a partner's HTTP(S) server (``[images] source = "http"``): read-only, by ranges.

``HttpStore`` is the ``ranged.Store`` of one ``base_url``: the identifier ``a/b.tif`` is the URL
``base_url + "a/b.tif"`` (percent-encoded UTF-8; checked like a path by ``ranged.StoreSource``).
A HEAD gives the size and the version: a strong ``ETag``, else ``Last-Modified`` (with the size,
the fingerprint). Every ranged GET names that version (``If-Match`` or ``If-Unmodified-Since``,
and ``If-Range``), so a replaced file is a 503 for that request and new pixels after
``head_seconds``, never a mix. Only ``allowed_hosts`` are contacted: a redirect elsewhere is
refused. A file over ``max_bytes`` is refused at its HEAD; a server ignoring ``Range`` (200 with
the whole body) is refused and its connection closed unread: nothing is ever buffered whole.

The client is urllib3 (already installed by botocore; see pyproject.toml): a thread-safe
connection pool per process, per-request timeouts and retries, redirects under our control.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urljoin

from ..config import host_allowed
from ..errors import ImageDecodeError, StoreUnavailable
from .ranged import ChunkedStore, ObjectChanged, StoreSource

log = logging.getLogger(__name__)
RETRY_AFTER = 5  # seconds, for a store that did not answer
MAX_REDIRECTS = 3


@dataclass(frozen=True)
class HttpConfig:
    """What a process needs to reach the partner's server; picklable (a spawned render child)."""

    base_url: str
    allowed_hosts: tuple[str, ...]
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    retries: int = 2
    max_bytes: int = 4_000_000_000


class HttpStore(ChunkedStore):
    """The ``ranged.Store`` of one ``base_url``, with the bytes and requests it cost
    (``ranged.ChunkedStore``): a connection pool per process."""

    config: HttpConfig
    scheme = "http"

    @property
    def pool(self) -> Any:
        return self.client

    def _connect(self) -> Any:
        import urllib3

        # Never sleep on the partner's Retry-After: a worker thread would wait with it.
        retries = urllib3.Retry(
            total=self.config.retries,
            redirect=False,
            raise_on_status=False,
            respect_retry_after_header=False,
        )
        timeout = urllib3.Timeout(connect=self.config.connect_timeout, read=self.config.read_timeout)
        return urllib3.PoolManager(maxsize=32, retries=retries, timeout=timeout)

    def name(self, key: str) -> str:
        return self.config.base_url + quote(key, safe="/")

    def _request(self, method: str, key: str, headers: dict[str, str] | None = None) -> Any:
        """The answer (body unread) for ``key``, following at most ``MAX_REDIRECTS`` redirects
        within ``allowed_hosts``; StoreUnavailable if the server fails or sends us elsewhere."""
        import urllib3

        url = self.name(key)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                answer = self.pool.request(method, url, headers=headers, preload_content=False, redirect=False)
            except urllib3.exceptions.HTTPError as err:
                raise _unavailable(f"{method} {url}: {err}") from None
            if answer.status not in (301, 302, 303, 307, 308):
                return answer
            answer.close()
            target = urljoin(url, answer.headers.get("Location", ""))
            if not host_allowed(target, self.config.allowed_hosts):
                raise _unavailable(f"{method} {url} redirected to {target}, not in [http_source] allowed_hosts")
            url = target
        raise _unavailable(f"{method} {self.name(key)}: more than {MAX_REDIRECTS} redirects")

    def head(self, key: str) -> tuple[int, str, float] | None:
        """Size, version tag and modification time of ``key``; None if the server has no such file.
        The tag is the strong ETag, else ``lm-<seconds>`` from ``Last-Modified``."""
        answer = self._request("HEAD", key)
        answer.close()
        self._count("head", 0)
        if answer.status in (404, 410):
            return None
        if answer.status in (401, 403):
            log.warning("image store refused HEAD %s (%d): missing, or not readable", self.name(key), answer.status)
            return None
        if answer.status != 200:
            raise _unavailable(f"HEAD {self.name(key)}: {answer.status}")
        try:
            size = int(answer.headers["Content-Length"])
        except (KeyError, ValueError):
            raise _unavailable(f"HEAD {self.name(key)}: no Content-Length, so no ranged reads") from None
        if size > self.config.max_bytes:
            raise ImageDecodeError(f"image larger than [http_source] max_bytes ({size} > {self.config.max_bytes})")
        mtime = _seconds(answer.headers.get("Last-Modified"))
        etag = answer.headers.get("ETag", "")
        if etag and not etag.startswith("W/"):
            return size, etag.strip('"'), mtime or 0.0
        if mtime is None:
            raise _unavailable(f"HEAD {self.name(key)}: neither a strong ETag nor Last-Modified to tell versions by")
        return size, f"lm-{int(mtime)}", mtime

    def get(self, key: str, etag: str, start: int, length: int) -> bytes:
        """Exactly bytes ``start`` .. ``start + length`` of the version ``etag`` of ``key``."""
        if length <= 0:
            return b""
        if etag.startswith("lm-"):
            date = formatdate(int(etag[3:]), usegmt=True)
            condition = {"If-Unmodified-Since": date, "If-Range": date}
        else:
            condition = {"If-Match": f'"{etag}"', "If-Range": f'"{etag}"'}
        headers = {"Range": f"bytes={start}-{start + length - 1}", "Accept-Encoding": "identity", **condition}
        answer = self._request("GET", key, headers)
        try:
            if answer.status in (412, 404, 410, 416):
                raise ObjectChanged(key)
            if answer.status == 200:  # If-Range: the version changed; else the server ignores Range
                if self._changed(answer.headers, etag):
                    raise ObjectChanged(key)
                raise _unavailable(
                    f"GET {self.name(key)} ignored Range: refused unread", "the image store ignores Range"
                )
            if answer.status != 206:
                raise _unavailable(f"GET {self.name(key)}: {answer.status}")
            if not answer.headers.get("Content-Range", "").startswith(f"bytes {start}-"):
                raise _unavailable(f"GET {self.name(key)}: Content-Range {answer.headers.get('Content-Range')!r}")
            data: bytes = answer.read(length)
        except StoreUnavailable:
            self._count("get", 0)
            raise
        except Exception as err:  # urllib3's read errors: timeouts, a connection cut short
            self._count("get", 0)
            raise _unavailable(f"GET {self.name(key)}: {err}") from None
        finally:
            answer.close()  # never drained: what was not asked for is not read
        self._count("get", len(data))
        if len(data) != length:
            raise ObjectChanged(key)
        return data

    @staticmethod
    def _changed(headers: Any, etag: str) -> bool:
        if etag.startswith("lm-"):
            seconds = _seconds(headers.get("Last-Modified"))
            return seconds is not None and int(seconds) != int(etag[3:])
        sent = headers.get("ETag", "")
        return bool(sent) and sent.strip('"').removeprefix("W/").strip('"') != etag

    def keys(self, prefix: str, limit: int) -> Iterator[tuple[str, int, str, float]]:
        """HTTP has no listing: names are looked up one by one, with their extension."""
        return iter(())

    def reachable(self) -> bool:
        """Does the server answer at all (any status below 500 for ``base_url``)? For readiness."""
        try:
            answer = self._request("HEAD", "")
        except StoreUnavailable:
            return False
        answer.close()
        return bool(answer.status < 500)


class HttpSource(StoreSource):
    """Identifier -> file under ``[http_source] base_url`` (``ranged.StoreSource``). An identifier
    must carry its allowed extension (no listing to find it by); the index page lists nothing."""

    def __init__(
        self, store: HttpStore, extensions: tuple[str, ...], head_seconds: float = 1.0, miss_seconds: float = 5.0
    ) -> None:
        super().__init__(store, "", extensions, head_seconds, miss_seconds)
        self.store: HttpStore = store


def _seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _unavailable(why: str, public: str = "the image store did not answer; try again later") -> StoreUnavailable:
    log.error("image store error: %s", why.splitlines()[0] if why else "?")
    return StoreUnavailable(public, RETRY_AFTER)


__all__ = ["HttpConfig", "HttpSource", "HttpStore"]
