"""Replay: the image endpoint's answers from memory, sent again by the ASGI edge as they were.

A hot tile or info.json costs ~2 µs of work (a stored tile's bytes, a cached document) but ~80 µs
of Python around it: the WSGI environ, the middleware layers, the endpoint's parsing, planning
and header building. For an identical request all of that gives the same bytes again, so the
edge keeps the finished answer (status line, headers, body) per request, in a bounded LRU per
worker, and sends it again without running the stack.

What an answer depends on is exactly what the key holds: the path and query, the scheme, the
``Host``, ``Accept`` for info.json (it picks the media type), and, when ``[server]
trusted_proxies`` is set, the connecting address and every forwarded header (they change the
base URL in ids and links). Only a 200 to a GET answered from memory on the event loop is kept
(a stored tile or the memory tier: the image endpoint marks it ``REPLAYABLE``), so a replay is
never older than what the stack itself would have answered:

- the **access policy** is asked on every replay, with the answer's file, exactly as the endpoint
  asks it; anything but ``Allowed`` goes to the stack (and the endpoint marks only answers it
  gave as ``Allowed`` replayable: a degraded view is never kept, nor an answer a session's levels
  opened (``Authorised``), so no tier gets another's bytes, and the key needs no cookie: what is
  kept is what every client gets);
- the **master** is checked as the stack checks it, with no I/O beyond a file's ``stat``: a
  file's fingerprint, an object's version as its source located it less than ``head_seconds``
  ago (older, the stack runs on a thread and asks the store): a replaced master is never replayed;
- a **purge** drops every answer: they carry the memory tier's generation, and none is
  replayed while the purge epoch is due for its check (which needs the shared tier, so the
  stack runs on a thread and makes it);
- **conditional requests** (``If-None-Match``, ``If-Modified-Since``) always go to the stack.

Every replay is counted and logged like any other request (``Observed.record``); the access log
names the tier that first answered (pass-through or memory).
"""

from __future__ import annotations

import os
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from .access import Allowed, Policy
from .errors import REPLAYABLE, TIER, NotFound
from .image.sources import ImageSource, Located, fingerprint
from .lru import LRU

Scope = MutableMapping[str, Any]
Message = dict[str, Any]
Key = tuple[Any, ...]

#: ASGI scope key: the ``Request`` a lookup made before the ASGI cycle began (wire.py's miss).
LOOKED_UP = "iiif.replay.request"

_PREFIXES = frozenset({"/iiif/3/", "/iiif/2/"})
_CONDITIONAL = frozenset({b"if-none-match", b"if-modified-since", b"if-match", b"if-unmodified-since", b"if-range"})
_FORWARDED = frozenset(
    {
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
    }
)
_OVERHEAD = 512  # bytes of bookkeeping per answer, beyond its headers and body


@dataclass(frozen=True, slots=True)
class Answer:
    """A finished 200: the ASGI messages to send, and what its log line and metrics need."""

    start: Message
    body: Message
    head: bytes  # the headers as sent on the wire, blank line included (wire.py)
    source: Located
    generation: int
    size: int  # body bytes
    tier: str | None
    client: str | None  # the client the stack settled on, when forwarded headers counted


@dataclass(frozen=True, slots=True)
class Request:
    """What a lookup learnt of one request: its key, and the fields of its log line."""

    key: Key
    generation: int
    referer: str
    user_agent: str


def _weigh(answer: Answer) -> int:
    return answer.size + sum(len(name) + len(value) for name, value in answer.start["headers"]) + _OVERHEAD


class Replay:
    """The per-worker store of answers, used only from the event loop's thread."""

    def __init__(
        self,
        max_bytes: int,
        policy: Policy,
        generation: Callable[[], int | None],
        source: ImageSource,
        trusted_proxies: bool = False,
    ) -> None:
        self.answers: LRU[Key, Answer] = LRU(max_bytes, weigh=_weigh)
        self.policy = policy
        self.source = source
        self.generation = generation  # the memory tier's; None while a purge check is due
        self.trusted_proxies = trusted_proxies

    def lookup(self, scope: Scope) -> tuple[Answer | None, Request | None]:
        """The answer to send again, if any; and the request's key if its answer may be kept."""
        if scope["method"] not in ("GET", "HEAD"):
            return None, None
        path: str = scope["path"]
        if path[:8] not in _PREFIXES:  # an invalid URL under them is a miss: no answer is ever kept for it
            return None, None
        generation = self.generation()
        if generation is None:
            return None, None
        host = accept = None
        referer = user_agent = ""
        forwarded: list[tuple[bytes, bytes]] | None = None
        for name, value in scope["headers"]:
            if name == b"host":
                if host is not None:  # two Host headers: a 400 (RFC 9112 §3.2), the stack's to say
                    return None, None
                host = value
            elif name == b"accept":
                if accept is not None:  # the stack reads them joined: leave it to the stack
                    return None, None
                accept = value
            elif name == b"referer":
                referer = value.decode("latin-1")
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")
            elif name in _CONDITIONAL:
                return None, None
            elif name in _FORWARDED and self.trusted_proxies:
                forwarded = forwarded or []
                forwarded.append((name, value))
        key: Key = (
            path,
            scope.get("query_string", b""),
            scope.get("scheme", "http"),
            host,
            accept if path.endswith("/info.json") else None,
            None if forwarded is None else ((scope.get("client") or ("",))[0], tuple(forwarded)),
        )
        request = Request(key, generation, referer, user_agent)
        answer = self.answers.get(key)
        if answer is None:
            return None, request
        # The policy's decision now, for the answer's file (as ImageService.access asks it); a policy
        # that must first re-read its rules (the export changed) does so on the stack's thread.
        if self.policy.stale() or not isinstance(self.policy.decide(answer.source), Allowed):
            self.answers.pop(key)
            return None, None
        if answer.generation != generation or not self._current(answer.source):
            self.answers.pop(key)
            return None, request
        return answer, request

    def keep(
        self, request: Request, status: int, headers: list[tuple[bytes, bytes]], body: bytes, environ: dict[str, Any]
    ) -> None:
        """Keep the stack's answer to ``request`` if the image endpoint marked it replayable."""
        marked = environ.get(REPLAYABLE)
        if marked is None or status != 200 or environ.get("REQUEST_METHOD") != "GET":
            return
        forwarded = request.key[-1] is not None
        answer = Answer(
            start={"type": "http.response.start", "status": 200, "headers": headers},
            body={"type": "http.response.body", "body": body, "more_body": False},
            head=b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n",
            source=marked,
            generation=request.generation,
            size=len(body),
            tier=environ.get(TIER),
            client=environ.get("REMOTE_ADDR") if forwarded else None,
        )
        self.answers.put(request.key, answer)

    def _current(self, made_from: Located) -> bool:
        """Is the master still the one the answer was made from? Never blocks the event loop."""
        if made_from.blob is None:  # a file: one stat, as ``FileSource.known`` checks it
            try:
                return fingerprint(os.stat(made_from.path)) == made_from.fingerprint
            except OSError:
                return False
        try:  # an object: its version located less than head_seconds ago, else the stack asks
            now = self.source.known(made_from.identifier)
        except NotFound:
            return False
        return now is not None and now.fingerprint == made_from.fingerprint
