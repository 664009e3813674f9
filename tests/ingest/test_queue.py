"""Ingest across machines: RQ jobs on a real Redis, converted by a real `iiif-server worker` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue

from iiif_server.ingest.fixity import FixityCatalogue

from .test_batch import scan


@pytest.fixture
def queue_env(redis_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    name = f"test-ingest-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "IIIF_SERVER_CONFIG": os.devnull,
        "IIIF_SERVER_INGEST_QUEUE_URL": redis_url,
        "IIIF_SERVER_INGEST_QUEUE_NAME": name,
        "IIIF_SERVER_IMAGES_ROOT": str(tmp_path / "root"),
        "IIIF_SERVER_MANIFESTS_SOURCE": str(tmp_path / "no-export.csv"),
        "IIIF_SERVER_CACHE_DISK_DIR": str(tmp_path / "cache"),
    }
    yield env
    connection = Redis.from_url(redis_url)
    queue = Queue(name, connection=connection)
    for registry in (queue.finished_job_registry, queue.failed_job_registry):
        for job_id in registry.get_job_ids():
            connection.delete(f"rq:job:{job_id}", f"rq:results:{job_id}")
    queue.delete(delete_jobs=True)
    for key in connection.scan_iter(f"rq:*{name}*"):
        connection.delete(key)
    connection.close()


def iiif(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iiif_server", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_queue_and_worker_give_the_same_results_idempotently(queue_env: dict[str, str], tmp_path: Path) -> None:
    scans = tmp_path / "scans"
    scan(scans / "hiện vật" / "KH-0101 mặt trước.tif")
    scan(scans / "le-hoi" / "01.jpg")
    scan(scans / "02.png")
    (scans / "hỏng.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    queued = iiif(queue_env, "ingest", str(scans), "--queue")
    assert queued.returncode == 0, queued.stderr
    assert "queued 4 file(s), 0 already waiting" in queued.stdout
    again = iiif(queue_env, "ingest", str(scans), "--queue")
    assert "queued 0 file(s), 4 already waiting" in again.stdout  # not queued twice
    waiting = json.loads(iiif(queue_env, "ingest", "--status", "--json").stdout)
    assert (waiting["queued"], waiting["finished"]) == (4, 0)

    worker = iiif(queue_env, "worker", "--burst")  # a real worker process, as on another machine
    assert worker.returncode == 0, worker.stderr[-2000:]
    root = Path(queue_env["IIIF_SERVER_IMAGES_ROOT"])
    masters = sorted(str(p.relative_to(root)) for p in root.rglob("*.tif") if not p.name.startswith("."))
    assert masters == ["02.tif", "hiện vật/KH-0101 mặt trước.tif", "le-hoi/01.tif"]
    assert FixityCatalogue(root).get("le-hoi/01.tif") is not None
    done = json.loads(iiif(queue_env, "ingest", "--status", "--json").stdout)
    assert done["queued"] == 0 and done["finished"] == 4
    assert done["outcomes"] == {"ingested": 3, "failed": 1}
    assert done["failed_files"][0]["source"].endswith("hỏng.jpg")
    assert done["failed_files"][0]["reason"].startswith("not a readable image")
    text = iiif(queue_env, "ingest", "--status").stdout
    assert "0 waiting, 0 running, 4 done" in text and "hỏng.jpg" in text

    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*.tif")}
    assert "queued 4 file(s)" in iiif(queue_env, "ingest", str(scans), "--queue").stdout  # finished: queued anew
    assert iiif(queue_env, "worker", "--burst").returncode == 0
    rerun = json.loads(iiif(queue_env, "ingest", "--status", "--json").stdout)
    assert rerun["outcomes"] == {"skipped": 3, "failed": 1}  # the same jobs again change nothing
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.tif")} == stamps


def test_the_worker_converts_with_its_own_settings(queue_env: dict[str, str], tmp_path: Path) -> None:
    """Each job runs with the services its worker built from its own settings (here ``--images``
    on the worker's command line, which no environment variable repeats), not the enqueuer's."""
    scan(tmp_path / "scans" / "01.png")
    assert iiif(queue_env, "ingest", str(tmp_path / "scans"), "--queue").returncode == 0
    elsewhere = tmp_path / "worker-root"
    worker = iiif(queue_env, "worker", "--burst", "--images", str(elsewhere))
    assert worker.returncode == 0, worker.stderr[-2000:]
    assert (elsewhere / "01.tif").is_file()
    assert not (Path(queue_env["IIIF_SERVER_IMAGES_ROOT"]) / "01.tif").exists()
    assert FixityCatalogue(elsewhere).get("01.tif") is not None


def test_queue_without_redis_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "IIIF_SERVER_CONFIG": os.devnull, "IIIF_SERVER_IMAGES_ROOT": str(tmp_path)}
    result = iiif(env, "ingest", str(tmp_path), "--queue")
    assert result.returncode == 1
    assert "needs Redis: set [ingest] queue_url" in result.stderr
