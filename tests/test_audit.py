"""The audit log of restricted access (iiif_server/access/audit.py): batched off the caller's thread,
ordered, safe with threads and with several processes, flushed at exit, bounded without silent loss,
pruned; `iiif-server access log` through the real entry point; its metrics on a real server's /metrics."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iiif_server import metrics
from iiif_server.access.audit import Audit, audit_path, query
from iiif_server.access.audit_report import iso, parse_since, render
from iiif_server.check import free_port, running_server
from iiif_server.config import load_settings
from tests.access_site import IIIF_SERVER

#: A separate process that records and exits without closing: the atexit flush must write them.
WRITER = """
import sys, time
from pathlib import Path
from iiif_server.access.audit import Audit
path, user, count, start = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
while time.time() < start:
    time.sleep(0.001)
audit = Audit(path)
for n in range(count):
    audit.record(user, f"treasures/{user}.tif", "10.0.0.7", f"/iiif/3/x/full/max/0/default.jpg?n={n}", when=1.8e9 + n)
"""


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[Audit]:
    writer = Audit(tmp_path / "state" / "audit.sqlite", interval=0.02)
    yield writer
    writer.close()


def _rows(path: Path) -> list[tuple[int, float, str, str, str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT id, at, user, image, address, request FROM audit ORDER BY id").fetchall()


def test_records_are_written_in_batches_in_order(audit: Audit, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[int] = []
    original = Audit._write

    def counted(conn: sqlite3.Connection, rows: list[tuple[float, str, str, str, str]]) -> None:
        writes.append(len(rows))
        original(conn, rows)

    monkeypatch.setattr(Audit, "_write", staticmethod(counted))
    for n in range(2500):
        audit.record("alice", "hien-vat/KH-HV-0104-recto.tif", "192.0.2.1", f"/r?n={n}&token=s3cret", when=1.8e9 + n)
    audit.close()
    rows = _rows(audit.path)
    assert [row[4] for row in rows[:2]] == ["192.0.2.1"] * 2
    assert [row[5] for row in rows] == [f"/r?n={n}&token=REDACTED" for n in range(2500)]  # order kept, secrets not
    assert [row[1] for row in rows] == [1.8e9 + n for n in range(2500)]
    assert sum(writes) == 2500 and max(writes) <= 1000 and len(writes) <= 10  # batches, not a write per record
    assert oct(audit.path.stat().st_mode & 0o777) == "0o600"  # personal data: the server's user only


def test_concurrent_threads_lose_nothing_and_keep_each_threads_order(audit: Audit) -> None:
    def work(thread: int) -> None:
        for n in range(500):
            audit.record(f"user{thread}", "img.tif", "::1", str(n))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    audit.close()
    rows = _rows(audit.path)
    assert len(rows) == 4000
    for t in range(8):
        assert [int(row[5]) for row in rows if row[2] == f"user{t}"] == list(range(500))


def test_two_processes_write_the_same_file_and_flush_at_exit(tmp_path: Path) -> None:
    """Like two gunicorn workers: WAL + busy timeout, neither fails; each exits without close()."""
    path = tmp_path / "audit.sqlite"
    start = str(time.time() + 1.0)
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), user, "3000", start]) for user in ("an", "binh")
    ]
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0]
    records = query(path)
    assert len(records) == 6000
    for user in ("an", "binh"):
        mine = [r for r in records if r.user == user]
        assert [r.request.rsplit("=", 1)[1] for r in mine] == [str(n) for n in range(3000)]
    assert [r.at for r in records] == sorted(r.at for r in records)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_full_queue_blocks_briefly_then_counts_drops_and_a_broken_disk_is_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the folder should be")  # the database cannot be opened
    writer = Audit(blocker / "audit.sqlite", capacity=10, block=0.02, batch=5, interval=0.01)
    before = metrics.AUDIT_DROPPED._value.get()
    with caplog.at_level(logging.ERROR, logger="iiif_server.access.audit"):
        writer.record("u", "i", "a", "r0")
        time.sleep(0.2)  # the writer took a batch of one, failed, and takes no more until it is written
        for n in range(1, 16):
            writer.record("u", "i", "a", f"r{n}")
    assert writer.dropped == 5 and metrics.AUDIT_DROPPED._value.get() - before == 5
    assert any("cannot be written" in r.getMessage() for r in caplog.records)
    assert [r.getMessage().count("dropped so far") for r in caplog.records] == [0, 1]  # once a minute, not per record
    started = time.perf_counter()
    writer.record("u", "i", "a", "late")
    assert time.perf_counter() - started >= 0.02  # it waited for room before giving up
    written = metrics.AUDIT_RECORDS._value.get()
    blocker.unlink()  # the disk is back: the kept batch and the queue are written
    deadline = time.monotonic() + 10
    while metrics.AUDIT_RECORDS._value.get() - written < 11 and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.close()
    assert [r.request for r in query(blocker / "audit.sqlite")] == [f"r{n}" for n in range(11)]
    assert metrics.AUDIT_RECORDS._value.get() - written == 11


def test_records_that_cannot_be_written_at_exit_are_counted_as_dropped(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    writer = Audit(blocker / "audit.sqlite", interval=0.01)
    before = metrics.AUDIT_DROPPED._value.get()
    for n in range(3):
        writer.record("u", "i", "a", str(n))
    started = time.perf_counter()
    writer.close()
    assert time.perf_counter() - started < 5  # gives up at once instead of retrying until the join times out
    assert writer.dropped == 3 and metrics.AUDIT_DROPPED._value.get() - before == 3


def test_retention_deletes_old_records_and_zero_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    keep = Audit(path, days=0)
    keep.record("old", "i", "a", "r", when=time.time() - 40 * 86400)
    keep.close()
    keep.record("new", "i", "a", "r")
    keep.close()
    assert [r.user for r in query(path)] == ["old", "new"]
    prune = Audit(path, days=30)
    prune.record("newer", "i", "a", "r")
    prune.close()
    assert [r.user for r in query(path)] == ["new", "newer"]


def test_query_filters_and_renders(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    writer = Audit(path)
    writer.record("an", "stele.tif", "10.0.0.1", "/a", when=1_790_000_000)
    writer.record("binh", "drum.tif", "10.0.0.2", "/b\x1b[31m", when=1_790_000_100)
    writer.record("an", "drum.tif", "10.0.0.3", "/c", when=1_790_000_200)
    writer.close()
    assert [r.request for r in query(path, user="an")] == ["/a", "/c"]
    assert [r.request for r in query(path, image="drum.tif")] == ["/b\x1b[31m", "/c"]
    assert [r.request for r in query(path, since=1_790_000_100, user="an")] == ["/c"]
    table = render(query(path), "table")
    assert "\x1b" not in table and "/b\\x1b[31m" in table  # a crafted URL cannot drive the terminal
    assert table.splitlines()[1].startswith("2026-09-21T14:13:20Z  an    stele.tif  10.0.0.1  /a")
    assert query(tmp_path / "missing.sqlite") == []


def test_parse_since() -> None:
    assert parse_since("7d", now=1_000_000.0) == 1_000_000 - 7 * 86400
    assert parse_since("90m", now=1_000_000.0) == 1_000_000 - 5400
    assert parse_since("2026-11-01") == 1_793_491_200  # UTC midnight
    assert parse_since("2026-11-01T07:00+07:00") == 1_793_491_200
    with pytest.raises(ValueError, match="give a date"):
        parse_since("last week")


def test_audit_file_follows_the_manifests_state_unless_set(tmp_path: Path) -> None:
    settings = load_settings(os.devnull, environ={})
    assert audit_path(settings) == settings.manifests.state_dir / "audit.sqlite"
    config = tmp_path / "c.toml"
    config.write_text('[access]\nstate_dir = "private"\naudit_days = 365\n')
    settings = load_settings(config, environ={})
    assert audit_path(settings) == tmp_path / "private" / "audit.sqlite" and settings.access.audit_days == 365


def test_recording_costs_a_queue_put_not_io(audit: Audit, tmp_path: Path) -> None:
    """Min of N batches, as ratios: against a dict store (the floor of any in-memory note) and
    against one committed SQLite insert (what writing on the caller's thread would cost)."""

    def best(action: object, n: int = 200, repeats: int = 15) -> float:
        fastest = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(n):
                action()  # type: ignore[operator]
            fastest = min(fastest, (time.perf_counter() - started) / n)
        return fastest

    audit.record("warm", "i", "a", "r")
    store: dict[int, tuple[str, ...]] = {}
    record = best(
        lambda: audit.record("alice", "hien-vat/KH-HV-0104-recto.tif", "192.0.2.1", "/iiif/3/x/full/max/0/default.jpg")
    )
    put = best(lambda: store.__setitem__(len(store) % 64, ("alice", "x", "y", "z")))
    with sqlite3.connect(tmp_path / "direct.sqlite", isolation_level=None) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (a, b, c, d, e)")
        direct = best(
            lambda: conn.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", (1.0, "a", "b", "c", "d")), n=20, repeats=5
        )
    print(
        f"record {record * 1e6:.2f} µs, dict put {put * 1e6:.3f} µs ({record / put:.1f}x), "
        f"committed insert {direct * 1e6:.1f} µs ({direct / record:.0f}x record)"
    )
    assert record < 10 * put
    assert record * 10 < direct


def test_access_log_command_reads_what_another_process_wrote(tmp_path: Path) -> None:
    """`iiif-server access log` (the installed console script) on records a separate process wrote."""
    config = tmp_path / "site.toml"
    config.write_text('[access]\nstate_dir = "state"\n')
    path = tmp_path / "state" / "audit.sqlite"
    subprocess.run([sys.executable, "-c", WRITER, str(path), "an", "3", "0"], check=True, timeout=60)
    subprocess.run([sys.executable, "-c", WRITER, str(path), "binh", "2", "0"], check=True, timeout=60)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IIIF_SERVER_")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [IIIF_SERVER, "access", "log", "--config", str(config), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    shown = run("--user", "an", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == [
        {
            "time": iso(1.8e9 + n),
            "user": "an",
            "image": "treasures/an.tif",
            "address": "10.0.0.7",
            "request": f"/iiif/3/x/full/max/0/default.jpg?n={n}",
        }
        for n in range(3)
    ]
    table = run("--image", "treasures/binh.tif")
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 3 and "binh" in table.stdout.splitlines()[1]
    rows = list(csv.reader(io.StringIO(run("--since", "2027-01-15T08:00:01", "--format", "csv").stdout)))
    assert rows[0] == ["time", "user", "image", "address", "request"] and [r[1] for r in rows[1:]] == [
        "an",
        "binh",
        "an",
    ]
    assert len(run("--since", "1d").stdout.splitlines()) == 6  # a header and all five: they are dated 2027
    bad = run("--since", "yesterday")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "give a date" in bad.stderr
    nobody = run("--user", "nobody")
    assert nobody.returncode == 1 and nobody.stdout == "" and "no records match" in nobody.stderr


def test_audit_metrics_on_a_real_server(image_root: Path, tmp_path: Path) -> None:
    """The counters exist on /metrics (summed over workers) from the start, at 0, so alerts can watch them."""
    import urllib.request

    root = tmp_path / "images"
    root.mkdir()
    (root / "pattern.png").write_bytes((image_root / "pattern.png").read_bytes())
    with (
        running_server(["serve", "--images", str(root), "--workers", "1"], free_port()) as base,
        urllib.request.urlopen(base + "/metrics", timeout=30) as response,
    ):
        text = response.read().decode()
    lines = text.splitlines()
    assert "iiif_audit_records_total 0.0" in lines and "iiif_audit_dropped_total 0.0" in lines


def test_a_forked_worker_writes_its_own_records(tmp_path: Path) -> None:
    """gunicorn forks workers from a master: a child gets a fresh queue and writer of its own."""
    path = tmp_path / "audit.sqlite"
    writer = Audit(path, interval=0.01)
    writer.record("master", "i", "a", "before fork")
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code = 1
        try:
            writer.record("worker", "i", "a", "in the child")
            writer.close()
            code = 0
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    writer.close()
    assert sorted((r.user, r.request) for r in query(path)) == [("master", "before fork"), ("worker", "in the child")]


def test_access_log_demo_reads_the_demo_s_own_log(tmp_path: Path) -> None:
    """`iiif-server demo` keeps its audit log in its state folder; `access log --demo` reads that one
    (found missing as a user would: the log of the demo's logins was not where `access log` looked)."""
    config = tmp_path / "site.toml"
    config.write_text('[demo]\nroot = "demo-images"\n')
    path = tmp_path / "demo-images" / ".state" / "audit.sqlite"
    subprocess.run([sys.executable, "-c", WRITER, str(path), "demo-researcher", "2", "0"], check=True, timeout=60)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IIIF_SERVER_")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [IIIF_SERVER, "access", "log", "--config", str(config), "--format", "json", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )

    demo = run("--demo")
    assert demo.returncode == 0, demo.stderr
    assert [row["user"] for row in json.loads(demo.stdout)] == ["demo-researcher"] * 2
    museum = run()  # the museum's log ([manifests] state_dir): nothing there
    assert museum.returncode == 1 and "no audit log" in museum.stderr
