"""``iiif-server check`` run in a deployment folder: it must touch nothing of the deployment."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import DEMO_EXPORT

SITE = "https://iiif.museum.example"


def user_env() -> dict[str, str]:
    """The environment of a user's shell: no IIIF_SERVER_* settings, so ./config.toml is read."""
    return {k: v for k, v in os.environ.items() if not k.startswith("IIIF_SERVER_")}


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iiif_server", *args],
        cwd=cwd,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def files(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file and folder under ``folder``: size, modification time and content hash."""
    found = {}
    for path in sorted(folder.rglob("*")):
        info = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        found[str(path.relative_to(folder))] = (info.st_size, info.st_mtime_ns, digest)
    return found


def activity(site: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((site / "iiif" / "activity").iterdir())}


def test_check_in_a_deployment_folder_leaves_its_change_discovery_stream_alone(demo_root: Path, tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"  # a museum's folder: config.toml, manifests/collection.csv, manifests/state
    (deploy / "manifests").mkdir(parents=True)
    shutil.copy(DEMO_EXPORT, deploy / "manifests" / "collection.csv")
    (deploy / "config.toml").write_text(f"[images]\nroot = {json.dumps(str(demo_root))}\n", encoding="utf-8")
    built = cli(deploy, "manifests", "build", "--out", str(tmp_path / "before"), "--base-url", SITE)
    assert built.returncode == 0, built.stderr
    assert "20 Create" in built.stdout
    stream = deploy / "manifests" / "state" / "changes.sqlite"
    published = stream.read_bytes()
    before = files(deploy)

    checked = cli(deploy, "check", "--versions", "3.0", "--level", "0")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Image API 3.0 level 0:" in checked.stdout and " 0 failed" in checked.stdout

    assert stream.read_bytes() == published
    assert files(deploy) == before  # nothing changed, nothing new (no cache, no state, no pid file)
    again = cli(deploy, "manifests", "build", "--out", str(tmp_path / "after"), "--base-url", SITE)
    assert again.returncode == 0, again.stderr
    assert "changes published: none" in again.stdout
    assert activity(tmp_path / "after") == activity(tmp_path / "before")
