"""The credentials a request carries, as the access levels of who sent it: the image path's hook.

A request may carry a login session (the ``iiif_session`` cookie, ``login.py``) or, for the IIIF
Authorization Flow clients, an ``Authorization: Bearer`` access token. ``Credentials.grant`` turns
either into a ``Grant`` (the account and the levels it may see now), or None: anonymous. The image
service asks only for images that are not public (``service.py``), so a public tile never parses a
cookie, and the replayed fast path never asks at all.

A session lookup is a SQLite read; a tile costs microseconds. So each worker keeps what it learnt,
keyed by the token's sha256 (never the token), for at most ``ttl`` seconds (``[access]
session_cache_seconds``): a logout, removed account or changed password takes effect within that
bound, and a burst of tiles from one viewer costs one read. On the event loop (``fast``) a token not
in memory raises ``WouldBlock``: the edge asks again on a thread.

Bearer tokens are resolved by ``bearer`` (``tokens.py``, filled in by ``services.py``). The
``external`` pattern's ambient aspects (``ambient.py``: a staff network, a trusted proxy's header
naming an account) count too, for image requests carry no token in Auth 2.0: the network costs an
address check and no read; the header's account is cached like a token. A request with both a
token or cookie and an ambient aspect gets the levels of both, under the token's user.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING, Any

from ..errors import WouldBlock
from ..forwarded import trusted
from ..lru import LRU
from . import Grant
from .ambient import EXTERNAL, networks_of
from .login import COOKIE as SESSION_COOKIE
from .sessions import KIOSK, MAX_TOKEN, Sessions

if TYPE_CHECKING:
    from .ambient import Ambient

_MAX_ENTRIES = 4096  # tokens remembered per worker, least recently used dropped first


Resolve = Callable[[str], Grant | None]


def session_token(cookie_header: str) -> str | None:
    """The session cookie's value in a ``Cookie`` header; None if absent or unreadable."""
    if SESSION_COOKIE not in cookie_header:
        return None
    try:
        morsel = SimpleCookie(cookie_header).get(SESSION_COOKIE)
    except CookieError:
        return None
    return morsel.value if morsel is not None else None


def bearer_token(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class Credentials:
    """Extracts a request's credentials and resolves them to a ``Grant``, cached ``ttl`` seconds."""

    def __init__(
        self,
        sessions: Sessions,
        ttl: float = 1.0,
        bearer: Resolve | None = None,
        clock: Callable[[], float] = time.monotonic,
        ambient: Ambient | None = None,
        kiosk_networks: Iterable[str] = (),
    ) -> None:
        self.ttl = ttl
        self.kiosk_networks = networks_of(kiosk_networks)
        self.clock = clock
        self.ambient = ambient if ambient else None
        self._resolvers: dict[str, Resolve] = {"session": _session_resolver(sessions)}
        if bearer is not None:
            self._resolvers["bearer"] = bearer
        if self.ambient is not None:
            self._resolvers["header"] = self.ambient.account_grant
        self._known: LRU[str, tuple[float, Grant | None]] = LRU(_MAX_ENTRIES)

    def grant(self, environ: Mapping[str, Any], fast: bool = False) -> Grant | None:
        """The request's grant, or None (anonymous). ``fast``: from memory only, else ``WouldBlock``."""
        found = None
        for kind, token in self._tokens(environ):
            found = self._resolve(kind, token, fast)
            if found is not None:
                break
        if found is not None and not self._where_granted(found, environ):
            found = None  # a gallery terminal's session (or its token) is worth nothing away from the gallery
        if self.ambient is None:
            return found
        return _joined(found, self._ambient(self.ambient, environ, fast))

    def _where_granted(self, grant: Grant, environ: Mapping[str, Any]) -> bool:
        """A gallery terminal's or a staff network's grant (its session or token) holds only from the
        networks that gave it: a cookie or token carried elsewhere opens nothing."""
        if grant.user.startswith(KIOSK):
            networks = self.kiosk_networks
        elif grant.user.startswith(EXTERNAL):
            networks = self.ambient.networks if self.ambient is not None else []
        else:
            return True
        return bool(networks) and trusted(environ.get("REMOTE_ADDR"), networks)

    def _ambient(self, ambient: Ambient, environ: Mapping[str, Any], fast: bool) -> Grant | None:
        """The external pattern's aspects: a staff network's levels, joined with a trusted header's account."""
        name = ambient.header_account(environ)
        account = None if name is None else self._resolve("header", name, fast)
        return _joined(account, ambient.network_grant(environ))

    def _tokens(self, environ: Mapping[str, Any]) -> list[tuple[str, str]]:
        tokens: list[tuple[str, str]] = []
        authorization = environ.get("HTTP_AUTHORIZATION")
        if authorization and "bearer" in self._resolvers:
            token = bearer_token(authorization)
            if token is not None:
                tokens.append(("bearer", token))
        cookie = environ.get("HTTP_COOKIE")
        if cookie:
            token = session_token(cookie)
            if token is not None:
                tokens.append(("session", token))
        return tokens

    def _resolve(self, kind: str, token: str, fast: bool) -> Grant | None:
        if len(token) > MAX_TOKEN:
            return None
        key = kind + ":" + hashlib.sha256(token.encode()).hexdigest()
        now = self.clock()
        known = self._known.get(key)
        if known is not None and known[0] > now:
            return known[1]
        if fast:
            raise WouldBlock  # a database read: on a thread
        found = self._resolvers[kind](token)
        self._known.put(key, (now + self.ttl, found))
        return found


def _joined(first: Grant | None, second: Grant | None) -> Grant | None:
    """Both grants' levels, under the first one's user (the more specific credential comes first)."""
    if first is None or second is None:
        return first or second
    return Grant(first.user, first.levels | second.levels)


def _session_resolver(sessions: Sessions) -> Resolve:
    def resolve(token: str) -> Grant | None:
        session = sessions.lookup(token)
        return None if session is None else Grant(session.username, frozenset(session.levels))

    return resolve
