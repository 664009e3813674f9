"""Server-side login sessions: an opaque random token in the browser, its sha256 in the database.

The token (``secrets.token_urlsafe(32)``, 256 bits) is the cookie's value and nothing else: no
user name, no expiry, nothing to forge. The database keeps only its hash, so a leaked copy of the
file gives no live session. ``lookup`` reads the account each time: a removed, expired or
re-passworded account's sessions die at once, and the levels returned are the account's levels now.
An *ambient* session (``create_ambient``) has no account: a gallery terminal's, opened by the kiosk
service with the levels ``[access] kiosk_levels`` gives it; it answers ``lookup`` and ``end`` alike.
The IIIF access tokens (``tokens.py``) are issued to a session and die with it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from .accounts import Account, Accounts, from_row

KIOSK = "kiosk@"  # an ambient session's label: "kiosk@<address>" (the kiosk service, flow.py)
MAX_TOKEN = 128  # token_urlsafe(32) is 43 characters; anything much longer is not ours


@dataclass(frozen=True, slots=True)
class Session:
    account: Account
    created: float  # seconds since the epoch
    expires: float

    @property
    def username(self) -> str:
        return self.account.username

    @property
    def levels(self) -> tuple[str, ...]:
        return self.account.levels


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    def __init__(self, accounts: Accounts, lifetime: float, clock: Callable[[], float] = time.time) -> None:
        self.accounts = accounts
        self.lifetime = lifetime  # seconds
        self.clock = clock

    def create(self, username: str) -> str:
        """A new session for an existing account; returns its token (shown to nobody but the browser)."""
        return self._insert("sessions", "username", username)

    def create_ambient(self, label: str, levels: tuple[str, ...]) -> str:
        """A session of no account (a gallery terminal): ``label`` for the audit, ``levels`` fixed."""
        return self._insert("ambient_sessions", "label, levels", label, json.dumps(list(levels)))

    def _insert(self, table: str, columns: str, *values: str) -> str:
        """A new row of ``table`` (a constant of this class, never a caller's string) for a new token."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        marks = ", ".join("?" * (len(values) + 3))
        with self.accounts.connect() as conn:
            # sessions long over are dropped as new ones come: the table stays the size of its live use
            conn.execute(f"DELETE FROM {table} WHERE expires < ? OR ended < ?", (now - 86400, now - 86400))
            conn.execute(
                f"INSERT INTO {table} (token_hash, {columns}, created, expires) VALUES ({marks})",
                (digest(token), *values, now, now + self.lifetime),
            )
        return token

    def lookup(self, token: str | None) -> Session | None:
        """The live session of ``token``: not ended, not expired, its account present and active."""
        if not token or len(token) > MAX_TOKEN:
            return None
        return self.lookup_digest(digest(token))

    def lookup_digest(self, token_hash: str) -> Session | None:
        """``lookup`` by the token's sha256, as access tokens (``tokens.py``) remember their session."""
        now = self.clock()
        with self.accounts.connect() as conn:
            row = conn.execute(
                "SELECT a.username, a.display_name, a.levels, a.expires, a.created, a.updated, s.created, s.expires "
                "FROM sessions s JOIN accounts a ON a.username = s.username "
                "WHERE s.token_hash = ? AND s.ended IS NULL AND s.expires > ?",
                (token_hash, now),
            ).fetchone()
            ambient = None
            if row is None:
                ambient = conn.execute(
                    "SELECT label, levels, created, expires FROM ambient_sessions "
                    "WHERE token_hash = ? AND ended IS NULL AND expires > ?",
                    (token_hash, now),
                ).fetchone()
        if ambient is not None:
            label, levels, created, expires = ambient
            return Session(Account(label, label, tuple(json.loads(levels)), None, "", ""), created, expires)
        if row is None:
            return None
        account = from_row(row[:6])
        if not account.active(date.today()):
            return None
        return Session(account, row[6], row[7])

    def end(self, token: str | None) -> bool:
        """Logout: the token is dead from now on, in every worker. True if it was live."""
        if not token or len(token) > MAX_TOKEN:
            return False
        ended = 0
        with self.accounts.connect() as conn:
            for table in ("sessions", "ambient_sessions"):
                ended += conn.execute(
                    f"UPDATE {table} SET ended = ? WHERE token_hash = ? AND ended IS NULL",
                    (self.clock(), digest(token)),
                ).rowcount
        return bool(ended)

    def count(self, username: str) -> int:
        """Live sessions of an account (``users list`` shows them)."""
        with self.accounts.connect() as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM sessions WHERE username = ? AND ended IS NULL AND expires > ?",
                (username, self.clock()),
            ).fetchone()
        return int(row[0])
