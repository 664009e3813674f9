"""A build that would delete most of the collection is refused unless forced: CLI and running server.

An unmounted image root or an emptied export must not tell harvesters that every manifest is gone.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

from iiif_server.check import free_port, running_server
from tests.presentation.conftest import HEADER, ROWS, write_export
from tests.presentation.test_demo import run_cli

REFUSED = (
    "not published: 3 of the 3 published manifests would be deleted at once, "
    "more than [manifests] max_delete_share = 0.5 allows"
)


def move(source: Path, target: Path) -> None:
    """Every image away from the root (or back), the root itself staying: an unmounted share."""
    target.mkdir(exist_ok=True)
    for child in source.iterdir():
        shutil.move(child, target / child.name)


def test_cli_refuses_a_mass_deletion_without_force(collection: Path) -> None:
    env = {
        "IIIF_SERVER_MANIFESTS_STATE_DIR": str(collection / "state"),
        "IIIF_SERVER_CACHE_DISK_DIR": str(collection / "cache"),
    }
    images, export = collection / "images", collection / "export.csv"
    args = ("--images", str(images), "--source", str(export))
    first = run_cli(*args, env=env)
    assert first.returncode == 0, first.stderr
    assert "changes published: 11 Create" in first.stdout  # 3 manifests, 8 collections
    stream = collection / "state" / "changes.sqlite"
    published = stream.read_bytes()

    move(images, collection / "away")
    site = collection / "site"
    missing = run_cli(*args, "--out", str(site), "--base-url", "https://iiif.example", env=env)
    assert missing.returncode == 1
    assert "image file not found: ponagar/tháp chính.tif" in missing.stdout  # the summary says why
    assert "changes published: none (stream: 11 activities)" in missing.stdout
    reason = [line for line in missing.stderr.splitlines() if line.startswith("Error:")]
    assert len(reason) == 1 and REFUSED in reason[0] and "iiif-server manifests build --force" in reason[0]
    assert "Traceback" not in missing.stderr
    assert not site.exists()  # nothing written either
    assert stream.read_bytes() == published
    move(collection / "away", images)

    write_export(export, [])  # an export with no rows: as likely a mistake, refused the same way
    empty = run_cli(*args, env=env)
    assert empty.returncode == 1 and REFUSED in empty.stderr
    assert stream.read_bytes() == published

    write_export(export, [ROWS[0], ROWS[2], ROWS[3]])  # one of three public records withdrawn: published
    one = run_cli(*args, env=env)
    assert one.returncode == 0, one.stderr
    assert "changes published: 2 Delete, 4 Update" in one.stdout  # the manifest and its emptied collection

    write_export(export, [], HEADER)
    forced = run_cli(*args, "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert "built 0 manifests" in forced.stdout
    assert "Delete" in forced.stdout and "changes published: none" not in forced.stdout


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        assert response.status == 200
        return response.read()


def activities(base: str) -> list[dict]:
    stream = json.loads(get(f"{base}/iiif/activity/all-changes"))
    items: list[dict] = []
    page: str | None = stream["first"]["id"]
    while page:
        listing = json.loads(get(page))
        items += listing["orderedItems"]
        page = listing.get("next", {}).get("id")
    assert len(items) == stream["totalItems"]
    return items


def test_running_server_keeps_its_last_good_build_when_every_image_goes_missing(collection: Path) -> None:
    images, log = collection / "images", collection / "server.log"
    env = {
        "IIIF_SERVER_MANIFESTS_SOURCE": str(collection / "export.csv"),
        "IIIF_SERVER_MANIFESTS_STATE_DIR": str(collection / "state"),
        "IIIF_SERVER_CACHE_DISK_DIR": str(collection / "cache"),
        "IIIF_SERVER_MANIFESTS_CHECK_INTERVAL": "0",  # every request looks for changes
    }
    args = ["serve", "--images", str(images), "--workers", "1"]
    with running_server(args, free_port(), env=env, log=log) as base:
        before = activities(base)
        assert {a["type"] for a in before} == {"Create"} and len(before) == 11
        manifest = get(f"{base}/iiif/manifests/KH-DT-0001")

        move(images, collection / "away")
        assert activities(base) == before  # no Delete for harvesters
        assert get(f"{base}/iiif/manifests/KH-DT-0001") == manifest  # the last good build is still served
        lines = [line for line in log.read_text(encoding="utf-8").splitlines() if REFUSED in line]
        assert lines and "manifests not rebuilt" in lines[0] and "--force" in lines[0]

        move(collection / "away", images)
        assert activities(base) == before  # back as it was: nothing to tell
        write_export(collection / "export.tmp", [ROWS[0], ROWS[2], ROWS[3]])
        (collection / "export.tmp").replace(collection / "export.csv")  # one record withdrawn: a real Delete
        after = activities(base)
        deleted = [a["object"] for a in after[len(before) :] if a["type"] == "Delete"]
        assert {"id": f"{base}/iiif/manifests/KH-HV-0102", "type": "Manifest"} in deleted
