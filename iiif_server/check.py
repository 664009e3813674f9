"""``iiif-server check``: the official IIIF validator against a real ``iiif-server serve``.

Starts the production server (gunicorn) in a subprocess on a free port, runs
every test of the chosen level, and reports counts per version. That server
lives entirely in a temporary folder: an image root holding only the
validator's test image, no collection export, its own change log and cache.
Run in a deployment folder, it must never read that folder's config.toml or
write to its state: a build there with a temporary image root would find every
published image missing and tell harvesters the whole collection was deleted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

from .config import CONFIG_ENV, ENV_PREFIX

TEST_IDENTIFIER = "67352ccc-d1b0-11e1-89ae-279075081939"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers; give up early if ``process`` (the server) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode} before answering at {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not answer at {url} within {timeout:.0f}s")


@contextlib.contextmanager
def running_server(
    args: list[str],
    port: int,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    program: tuple[str, ...] = (sys.executable, "-m", "iiif_server"),
    start_timeout: float = 60.0,
    log: Path | None = None,
) -> Iterator[str]:
    """``iiif-server ARGS --port PORT`` in a subprocess; yields its base URL and stops it afterwards.

    The server sees only the settings in ``env``: neither the user's config.toml (``IIIF_SERVER_CONFIG``
    is empty unless ``env`` names one) nor any ``IIIF_SERVER_*`` variable of this process's environment.
    ``program`` may be another environment's ``iiif-server`` (an installed package); ``cwd`` the folder.
    ``log`` receives the server's stderr (gunicorn's and the app's log lines) and stdout (the access
    log) instead of a pipe and nothing.
    """
    command = [*program, *args, "--port", str(port), "--host", "127.0.0.1"]
    inherited = {name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)}
    full_env = {**inherited, CONFIG_ENV: os.devnull, "IIIF_SERVER_CACHE_DISK_MAX_MB": "0", **(env or {})}
    with contextlib.ExitStack() as stack:
        stderr = stack.enter_context(log.open("ab")) if log is not None else subprocess.PIPE
        stdout = stderr if log is not None else subprocess.DEVNULL
        process = subprocess.Popen(command, env=full_env, cwd=cwd, stdout=stdout, stderr=stderr)
        base = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_until_up(base + "/", start_timeout, process)
            except RuntimeError:
                process.terminate()
                _, err = process.communicate(timeout=10)
                err = log.read_bytes() if log is not None else err
                raise RuntimeError(f"server failed to start: {err.decode(errors='replace')[-2000:]}") from None
            yield base
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
            if process.stderr:
                process.stderr.close()


WORKER_ENV = "IIIF_SERVER_SERVER_WORKER"


def isolated_env(folder: Path) -> dict[str, str]:
    """Settings keeping a server inside ``folder``: images, no export, change log and cache all there."""
    (folder / "images").mkdir(exist_ok=True)
    source = resources.files("iiif_server") / "data" / f"{TEST_IDENTIFIER}.png"
    with resources.as_file(source) as path:
        shutil.copy(path, folder / "images" / f"{TEST_IDENTIFIER}.png")
    return {
        "IIIF_SERVER_IMAGES_ROOT": str(folder / "images"),
        "IIIF_SERVER_MANIFESTS_SOURCE": str(folder / "no-export.csv"),  # absent: no manifests, no activities
        "IIIF_SERVER_MANIFESTS_STATE_DIR": str(folder / "state"),
        "IIIF_SERVER_CACHE_DISK_DIR": str(folder / "cache"),
    }


def run_check(
    versions: tuple[str, ...], level: int, echo: Callable[[str], None] = print, worker: str | None = None
) -> int:
    """Validate each version against a server with that ``[server] worker`` (None: the default one);
    returns the number of failed tests."""
    from .conformance import run_validator

    failed = 0
    with (
        tempfile.TemporaryDirectory(prefix="iiif-check-") as folder,
        running_server(
            ["serve", "--workers", "2"],
            free_port(),
            env={**isolated_env(Path(folder)), **({WORKER_ENV: worker} if worker else {})},
        ) as base,
    ):
        for version in versions:
            prefix = f"iiif/{version.split('.')[0]}"
            result = run_validator(base, prefix, TEST_IDENTIFIER, version, level)
            passed, failures, skipped = result["passed"], result["failed"], result["skipped"]
            echo(
                f"Image API {version} level {level}: {len(passed)} passed, {len(failures)} failed, "
                f"{len(skipped)} above level"
            )
            for name, message in failures:
                echo(f"  FAIL {name}: {message}")
            failed += len(failures)
    return failed
