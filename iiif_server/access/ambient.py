"""The ``external`` pattern's authorizing aspects (Auth 2.0 §3.3.3): who a request is without a login.

Two, from ``[access]``: the client's address in ``external_networks`` (a staff network: granted
``external_levels``), or an account named by ``external_header``, a header believed only when the
request came through a proxy of ``[server] trusted_proxies`` (``forwarded.PROXIED``): from any other
peer the same header is a client's claim and names nobody. The address is the one the forwarded
rules settled on (``REMOTE_ADDR`` after ``ForwardedHeaders``), never a raw ``X-Forwarded-For``.
The token service turns either into a token; the image path (``credentials.py``) honours them
directly, as Auth 2.0 image requests carry no token.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from ..forwarded import PROXIED, Network, trusted
from . import Grant
from .accounts import USERNAME, Accounts

EXTERNAL = "external@"  # a staff network's grant: "external@<address>"


def networks_of(entries: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(entry, strict=False) for entry in entries]


def environ_key(header: str) -> str:
    """``X-Remote-User`` -> ``HTTP_X_REMOTE_USER``, as WSGI names it."""
    return "HTTP_" + header.strip().upper().replace("-", "_")


class Ambient:
    def __init__(self, accounts: Accounts, networks: Iterable[str], levels: Iterable[str], header: str = "") -> None:
        self.accounts = accounts
        self.networks = networks_of(networks)
        self.levels = frozenset(levels)
        self.header_key = environ_key(header) if header else ""

    def __bool__(self) -> bool:
        return bool(self.networks or self.header_key)

    def network_grant(self, environ: Mapping[str, Any]) -> Grant | None:
        """``external_levels`` for a client on a staff network; no database, so fine on the event loop."""
        address = environ.get("REMOTE_ADDR")
        if not self.networks or not trusted(address, self.networks):
            return None
        return Grant(f"{EXTERNAL}{address}", self.levels)

    def header_account(self, environ: Mapping[str, Any]) -> str | None:
        """The account name a trusted proxy's header gives; None from any other peer or if malformed."""
        if not self.header_key or not environ.get(PROXIED):
            return None
        value = str(environ.get(self.header_key, "")).strip()
        return value if USERNAME.fullmatch(value) else None

    def account_grant(self, username: str) -> Grant | None:
        """The named account's levels now, if it exists and is active (a database read)."""
        account = self.accounts.get(username)
        if account is None or not account.active(date.today()):
            return None
        return Grant(account.username, frozenset(account.levels))
