"""Local accounts of the people who may see restricted images: who, which access levels, until when.

One SQLite file (``accounts.sqlite3`` under ``[access] state_dir``), shared by every worker and the
``iiif-server users`` command, readable by its owner only. Passwords are argon2id hashes
(argon2-cffi): never stored, logged or printed in clear. ``verify`` costs the same for a name that
does not exist (a dummy hash is checked), so timing does not tell a guesser which names are real.
Sessions (``sessions.py``) live in the same file, so removing an account ends its sessions.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..config import Settings
from ..db import enable_wal
from ..errors import ConfigError

FILE = "accounts.sqlite3"
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
LEVEL = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 takes any length; a megabyte "password" would only cost CPU

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    username TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    levels TEXT NOT NULL,          -- JSON list of access level names
    expires TEXT,                  -- last valid day, YYYY-MM-DD; NULL: never
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,   -- sha256 of the cookie's value: a copy of the file logs nobody in
    username TEXT NOT NULL REFERENCES accounts(username) ON DELETE CASCADE,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    ended REAL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(username);
CREATE TABLE IF NOT EXISTS ambient_sessions (
    token_hash TEXT PRIMARY KEY,   -- a session of no account: a gallery terminal's (the kiosk service)
    label TEXT NOT NULL,           -- who, for the audit: "kiosk@<address>"
    levels TEXT NOT NULL,          -- JSON list, fixed when it was opened
    created REAL NOT NULL,
    expires REAL NOT NULL,
    ended REAL
);
CREATE TABLE IF NOT EXISTS access_tokens (
    token_hash TEXT PRIMARY KEY,   -- sha256 of an IIIF access token (Bearer): never the token itself
    session_hash TEXT,             -- the session (either table) it was issued to: it dies with it
    username TEXT REFERENCES accounts(username) ON DELETE CASCADE,  -- the account a trusted header named
    label TEXT NOT NULL,           -- who, for the audit
    levels TEXT NOT NULL,          -- JSON list: an ambient grant's levels (sessions and accounts: read anew)
    created REAL NOT NULL,
    expires REAL NOT NULL,
    ended REAL
);
CREATE INDEX IF NOT EXISTS access_tokens_session ON access_tokens(session_hash);
"""


def accounts_for(settings: Settings) -> Accounts:
    """The accounts of these settings: under ``[access] state_dir``, else ``[manifests] state_dir``."""
    return Accounts(settings.access.state_path(settings.manifests.state_dir))


class AccountError(ValueError):
    """A bad name, level, date or password, or an account that does (not) exist: one line for the user."""


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    display_name: str
    levels: tuple[str, ...]
    expires: date | None
    created: str
    updated: str

    def active(self, today: date | None = None) -> bool:
        """Usable today: ``expires`` is the last day it works."""
        return self.expires is None or (today or date.today()) <= self.expires


def check_username(name: str) -> str:
    if not USERNAME.fullmatch(name):
        raise AccountError(f"invalid account name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-'")
    return name


def parse_levels(text: str) -> tuple[str, ...]:
    """``"restricted,staff"`` -> ``("restricted", "staff")``; names are lower-case words."""
    levels = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    bad = [level for level in levels if not LEVEL.fullmatch(level)]
    if not levels or bad:
        raise AccountError(f"invalid access levels {text!r}: comma-separated names such as restricted")
    return levels


def parse_expiry(text: str) -> date:
    """The last day an account works, as YYYY-MM-DD (and only that: no week dates, no times)."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise AccountError(f"invalid expiry date {text!r}: use YYYY-MM-DD")


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"a password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Accounts:
    """The accounts table; a short-lived connection per call, so forks and threads share nothing."""

    def __init__(self, folder: Path, hasher: PasswordHasher | None = None) -> None:
        self.path = Path(folder) / FILE
        self.hasher = hasher or PasswordHasher()  # argon2id, RFC 9106's second recommended parameters
        self._ready = False
        self._dummy: str | None = None

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            self._create()
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            with conn:  # one transaction: committed, or rolled back on an exception
                yield conn
        finally:
            conn.close()

    def _create(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # hashes: for the owner's eyes only
            os.close(fd)
            conn = sqlite3.connect(self.path, timeout=30)
        except OSError as err:
            raise ConfigError(f"cannot open the accounts database {self.path}: {err.strerror}") from None
        try:
            enable_wal(conn)
            conn.executescript(_SCHEMA)
        finally:
            conn.close()
        self._ready = True

    def add(
        self, username: str, password: str, levels: tuple[str, ...], display_name: str = "", expires: date | None = None
    ) -> Account:
        check_username(username)
        check_password(password)
        now = _now()
        try:
            with self.connect() as conn:
                conn.execute(
                    "INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        username,
                        display_name or username,
                        self.hasher.hash(password),
                        json.dumps(list(levels)),
                        expires.isoformat() if expires else None,
                        now,
                        now,
                    ),
                )
        except sqlite3.IntegrityError:
            raise AccountError(f"an account named {username!r} exists already") from None
        return Account(username, display_name or username, levels, expires, now, now)

    def remove(self, username: str) -> None:
        """Deletes the account and, with it, every session it has (the next lookup fails)."""
        with self.connect() as conn:
            if not conn.execute("DELETE FROM accounts WHERE username = ?", (username,)).rowcount:
                raise AccountError(f"no account named {username!r}")

    def set_password(self, username: str, password: str) -> None:
        """A new password ends the account's sessions: whoever knew the old one is logged out."""
        check_password(password)
        with self.connect() as conn:
            changed = conn.execute(
                "UPDATE accounts SET password_hash = ?, updated = ? WHERE username = ?",
                (self.hasher.hash(password), _now(), username),
            ).rowcount
            if not changed:
                raise AccountError(f"no account named {username!r}")
            conn.execute("DELETE FROM sessions WHERE username = ?", (username,))

    def get(self, username: str) -> Account | None:
        with self.connect() as conn:
            row = conn.execute(
                "SELECT username, display_name, levels, expires, created, updated FROM accounts WHERE username = ?",
                (username,),
            ).fetchone()
        return from_row(row) if row else None

    def all(self) -> list[Account]:
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT username, display_name, levels, expires, created, updated FROM accounts ORDER BY username"
            ).fetchall()
        return [from_row(row) for row in rows]

    def verify(self, username: str, password: str) -> Account | None:
        """The account, if it exists, is active and ``password`` is its password; else None.

        Always one argon2 verification, whether the name exists or not."""
        with self.connect() as conn:
            row = conn.execute(
                "SELECT username, display_name, levels, expires, created, updated, password_hash "
                "FROM accounts WHERE username = ?",
                (username,),
            ).fetchone()
        stored = row[6] if row else self._dummy_hash()
        try:
            self.hasher.verify(stored, password[:MAX_PASSWORD])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if self.hasher.check_needs_rehash(stored):  # parameters raised since: store the stronger hash
            with self.connect() as conn:
                conn.execute(
                    "UPDATE accounts SET password_hash = ? WHERE username = ?", (self.hasher.hash(password), username)
                )
        account = from_row(row[:6])
        return account if account.active() else None

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self.hasher.hash("not a password: verified for names that do not exist")
        return self._dummy


def from_row(row: tuple[str, str, str, str | None, str, str]) -> Account:
    username, display_name, levels, expires, created, updated = row
    return Account(
        username,
        display_name,
        tuple(json.loads(levels)),
        date.fromisoformat(expires) if expires else None,
        created,
        updated,
    )
