"""IIIF access tokens (Auth 2.0 §4, Auth 1.0 §2.2): what a viewer sends as ``Authorization: Bearer``.

A token is a fresh random value (``secrets.token_urlsafe(32)``), never a cookie's value (2.0 §4.4:
a cookie built from a token must not open anything), kept as its sha256 in the accounts database,
beside the sessions. It is tied to what authorised it and resolves to no more than that does now:

- a **session** (a login, or a gallery terminal's ambient session): dead when the session is
  (logout, expiry, account removed or re-passworded), with the account's levels of now;
- an **account** a trusted proxy's header named (the ``external`` pattern): the account's levels now;
- an **ambient grant** (a staff network): the label and levels it was given.

It lives ``[access] token_seconds``, never beyond its session's end.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from . import Grant
from .accounts import Accounts
from .sessions import MAX_TOKEN, Session, Sessions, digest


@dataclass(frozen=True, slots=True)
class Issued:
    token: str
    expires_in: int  # whole seconds, at least 1 (2.0 §4.4: a positive integer)


class Tokens:
    def __init__(
        self, accounts: Accounts, sessions: Sessions, lifetime: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.accounts = accounts
        self.sessions = sessions
        self.lifetime = lifetime  # [access] token_seconds
        self.clock = clock

    def for_session(self, session_token: str, session: Session) -> Issued:
        """A token for a live session (its cookie's value and what ``Sessions.lookup`` gave for it)."""
        return self._issue(digest(session_token), None, session.username, (), session.expires)

    def for_account(self, username: str) -> Issued:
        """A token for an account a trusted proxy vouched for: its levels are read at each use."""
        return self._issue(None, username, username, (), None)

    def for_grant(self, grant: Grant) -> Issued:
        """A token carrying an ambient grant (a staff network's levels), as given."""
        return self._issue(None, None, grant.user, tuple(sorted(grant.levels)), None)

    def _issue(
        self, session_hash: str | None, username: str | None, label: str, levels: tuple[str, ...], until: float | None
    ) -> Issued:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        expires = now + self.lifetime if until is None else min(now + self.lifetime, until)
        with self.accounts.connect() as conn:
            conn.execute("DELETE FROM access_tokens WHERE expires < ? OR ended < ?", (now - 86400, now - 86400))
            conn.execute(
                "INSERT INTO access_tokens (token_hash, session_hash, username, label, levels, created, expires) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (digest(token), session_hash, username, label, json.dumps(list(levels)), now, expires),
            )
        return Issued(token, max(1, int(expires - now)))

    def grant(self, token: str) -> Grant | None:
        """What ``token`` opens now; None if unknown, expired, revoked or its session/account is gone."""
        if not token or len(token) > MAX_TOKEN:
            return None
        with self.accounts.connect() as conn:
            row = conn.execute(
                "SELECT session_hash, username, label, levels FROM access_tokens "
                "WHERE token_hash = ? AND ended IS NULL AND expires > ?",
                (digest(token), self.clock()),
            ).fetchone()
        if row is None:
            return None
        session_hash, username, label, levels = row
        if session_hash is not None:
            session = self.sessions.lookup_digest(session_hash)
            return None if session is None else Grant(session.username, frozenset(session.levels))
        if username is not None:
            account = self.accounts.get(username)
            if account is None or not account.active(date.today()):
                return None
            return Grant(account.username, frozenset(account.levels))
        return Grant(label, frozenset(json.loads(levels)))

    def end_session(self, session_token: str | None) -> int:
        """Logout: every token issued to this session is dead from now on. Returns how many."""
        if not session_token or len(session_token) > MAX_TOKEN:
            return 0
        with self.accounts.connect() as conn:
            return int(
                conn.execute(
                    "UPDATE access_tokens SET ended = ? WHERE session_hash = ? AND ended IS NULL",
                    (self.clock(), digest(session_token)),
                ).rowcount
            )
