"""What the access tests over real HTTP share: the installed `iiif-server` entry point, accounts made
through it, one GET, and the `serve` environment of a restricted collection. One copy, so every test
builds its site the same way and a change to the CLI or the settings is made once."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from pathlib import Path

IIIF_SERVER = str(Path(sys.executable).parent / "iiif-server")  # the console script, as installed


def cli(state: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`iiif-server *args` as an operator runs it: no config file, ``state`` the access state folder."""
    env = {**os.environ, "IIIF_SERVER_CONFIG": os.devnull, "IIIF_SERVER_ACCESS_STATE_DIR": str(state)}
    return subprocess.run([IIIF_SERVER, *args], input=stdin, env=env, capture_output=True, text=True, timeout=60)


def add_user(state: Path, name: str, levels: str, password: str, *options: str) -> None:
    """`iiif-server users add` (the password on stdin, never in the process list); it must succeed."""
    result = cli(state, "users", "add", name, "--levels", levels, *options, "--password-stdin", stdin=password + "\n")
    assert result.returncode == 0, result.stderr


def get(base: str, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """One GET on a connection of its own: status, headers (names lower-cased), body."""
    connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=60)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def server_env(export: Path, state: Path, worker: str = "asgi", **settings: str) -> dict[str, str]:
    """`iiif-server serve`'s environment for the collection ``export``, accounts in ``state``, the
    manifests' state beside it; 127.0.0.1 (the tests themselves) is the trusted proxy, so a test
    names its client with X-Forwarded-For as nginx would. ``settings`` add more by their environment
    names without the prefix: ``access_token_origins=...`` is IIIF_SERVER_ACCESS_TOKEN_ORIGINS."""
    return {
        "IIIF_SERVER_SERVER_WORKER": worker,
        "IIIF_SERVER_MANIFESTS_SOURCE": str(export),
        "IIIF_SERVER_MANIFESTS_STATE_DIR": str(state.parent / "manifests-state"),
        "IIIF_SERVER_ACCESS_STATE_DIR": str(state),
        "IIIF_SERVER_SERVER_TRUSTED_PROXIES": "127.0.0.1",
        **{f"IIIF_SERVER_{name.upper()}": value for name, value in settings.items()},
    }
