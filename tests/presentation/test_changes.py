"""The SQLite change log: diffing published states into Create/Update/Delete, persistence, concurrency."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from iiif_server.presentation.changes import Activity, ChangeLog, TooManyDeletes

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
T2 = T0 + timedelta(hours=2)
T3 = T0 + timedelta(hours=3)
A, B, C = "iiif/manifests/KH-DT-0001", "iiif/manifests/KH-DT-0002", "iiif/collections/gom"


@pytest.fixture
def log(tmp_path: Path) -> ChangeLog:
    return ChangeLog(tmp_path / "state" / "changes.sqlite")  # parent directory does not exist yet


def rows(activities: list[Activity]) -> list[tuple[int, str, str, str, datetime]]:
    return [(a.index, a.type, a.object_path, a.object_type, a.end_time) for a in activities]


def test_create_update_delete_recreate(log: ChangeLog) -> None:
    first = {A: ("Manifest", "h1"), C: ("Collection", "c1"), B: ("Manifest", "h1")}
    assert rows(log.record(first, T0)) == [  # sorted by path
        (0, "Create", C, "Collection", T0),
        (1, "Create", A, "Manifest", T0),
        (2, "Create", B, "Manifest", T0),
    ]
    assert log.record(first, T1) == []  # unchanged: nothing appended
    assert log.count() == 3

    second = {A: ("Manifest", "h2"), B: ("Manifest", "h1")}  # A changed, C withdrawn
    assert rows(log.record(second, T1)) == [
        (3, "Delete", C, "Collection", T1),
        (4, "Update", A, "Manifest", T1),
    ]
    assert log.record(second, T2) == []  # a deleted path is deleted once

    third = {**second, C: ("Collection", "c1")}  # C back, same content as before its deletion
    assert rows(log.record(third, T3)) == [(5, "Create", C, "Collection", T3)]
    assert log.record({}, T3 + timedelta(seconds=1)) == [
        Activity(6, "Delete", C, "Collection", T3 + timedelta(seconds=1)),
        Activity(7, "Delete", A, "Manifest", T3 + timedelta(seconds=1)),
        Activity(8, "Delete", B, "Manifest", T3 + timedelta(seconds=1)),
    ]
    everything = log.activities(0, 100)
    assert [a.index for a in everything] == list(range(9))
    assert [(a.type, a.object_path) for a in everything] == [
        ("Create", C),
        ("Create", A),
        ("Create", B),
        ("Delete", C),
        ("Update", A),
        ("Create", C),
        ("Delete", C),
        ("Delete", A),
        ("Delete", B),
    ]
    assert log.last_changed() == T3 + timedelta(seconds=1)


def test_a_mass_deletion_is_refused_whole(log: ChangeLog) -> None:
    """More than the allowed share of the published manifests: nothing is appended or stored."""
    four = {f"iiif/manifests/M{n}": ("Manifest", "h") for n in range(4)}
    log.record({**four, C: ("Collection", "c1")}, T0)
    path = log.path
    stored = path.read_bytes()
    with pytest.raises(TooManyDeletes) as refused:
        log.record({"iiif/manifests/M0": ("Manifest", "h")}, T1, max_delete_share=0.5)  # 3 of 4 manifests
    assert (refused.value.deletes, refused.value.published) == (3, 4)
    assert log.count() == 5 and path.read_bytes() == stored
    # exactly the share is allowed; collections do not count; the default allows everything
    two = {p: v for p, v in four.items() if p.endswith(("M0", "M1"))}
    assert [a.type for a in log.record(two, T1, max_delete_share=0.5)] == ["Delete"] * 3
    assert [a.type for a in log.record({}, T2)] == ["Delete", "Delete"]
    assert log.record({C: ("Collection", "c1")}, T3, max_delete_share=0.0)[0].type == "Create"  # nothing published


def test_type_change_is_an_update(log: ChangeLog) -> None:
    log.record({A: ("Manifest", "h1")}, T0)
    assert rows(log.record({A: ("Collection", "h1")}, T1)) == [(1, "Update", A, "Collection", T1)]


def test_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "changes.sqlite"
    state = {A: ("Manifest", "h1"), B: ("Manifest", "h1")}
    appended = ChangeLog(path).record(state, T0)

    reopened = ChangeLog(path)
    assert reopened.count() == 2
    assert reopened.activities(0, 10) == appended
    assert reopened.last_changed() == T0
    assert reopened.record(state, T1) == []  # the stored state survived, not just the activities
    assert rows(reopened.record({A: ("Manifest", "h1")}, T1)) == [(2, "Delete", B, "Manifest", T1)]


def test_touch(log: ChangeLog) -> None:
    log.record({A: ("Manifest", "h1"), C: ("Collection", "c1")}, T0)
    assert log.touch(A, "Manifest", T1) == Activity(2, "Update", A, "Manifest", T1)
    assert log.touch(B, "Manifest", T1) is None  # never published
    assert log.count() == 3
    assert log.record({A: ("Manifest", "h1"), C: ("Collection", "c1")}, T2) == []  # the hash is unchanged

    log.record({C: ("Collection", "c1")}, T2)  # A deleted
    assert log.touch(A, "Manifest", T3) is None
    with pytest.raises(ValueError, match="published as a Collection"):
        log.touch(C, "Manifest", T3)
    assert log.count() == 4


def test_end_times_are_whole_utc_seconds_rounded_up(log: ChangeLog) -> None:
    ict = timezone(timedelta(hours=7))  # a caller's local clock: stored and returned in UTC
    [created] = log.record({A: ("Manifest", "h1")}, datetime(2026, 11, 25, 17, 0, 0, 250_000, tzinfo=ict))
    assert created.end_time == T0 + timedelta(seconds=1)
    assert created.end_time.tzinfo == UTC
    touched = log.touch(A, "Manifest", T1)
    assert touched is not None
    assert touched.end_time == T1  # exact seconds stay
    with pytest.raises(ValueError, match="timezone-aware"):
        log.touch(A, "Manifest", datetime(2026, 11, 25, 12, 0))
    assert log.count() == 2  # the failed touch appended nothing


def test_end_times_never_decrease(log: ChangeLog) -> None:
    log.record({A: ("Manifest", "h1")}, T1)
    [late] = log.record({A: ("Manifest", "h2")}, T0)  # clock stepped back
    assert late.end_time == T1


def test_default_time_is_now(log: ChangeLog) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    [created] = log.record({A: ("Manifest", "h1")})
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert before <= created.end_time <= after
    assert created.end_time.microsecond == 0
    assert created.end_time.tzinfo == UTC


def test_empty_log(log: ChangeLog) -> None:
    assert log.count() == 0
    assert log.activities(0, 10) == []
    assert log.last_changed() is None
    assert log.record({}, T0) == []


def test_activities_slices(log: ChangeLog) -> None:
    log.record({f"iiif/manifests/M-{i:02d}": ("Manifest", "h") for i in range(25)}, T0)
    assert [a.index for a in log.activities(0, 10)] == list(range(10))
    assert [a.object_path for a in log.activities(20, 10)] == [f"iiif/manifests/M-{i:02d}" for i in range(20, 25)]
    assert log.activities(25, 10) == []
    assert log.activities(3, 0) == []
    with pytest.raises(ValueError):
        log.activities(-1, 10)


def test_invalid_input_records_nothing(log: ChangeLog) -> None:
    with pytest.raises(ValueError, match="object type"):
        log.record({A: ("Manifest", "h1"), B: ("manifest", "h1")}, T0)
    with pytest.raises(ValueError, match="relative"):
        log.record({"/iiif/manifests/x": ("Manifest", "h1")}, T0)
    assert log.count() == 0
    assert rows(log.record({A: ("Manifest", "h1")}, T0)) == [(0, "Create", A, "Manifest", T0)]


def test_wal_mode(log: ChangeLog) -> None:
    with closing(sqlite3.connect(log.path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


def test_threads_share_one_instance(log: ChangeLog) -> None:
    """Per-call connections: one ChangeLog used from many threads (as in a gunicorn worker)."""
    log.record({A: ("Manifest", "h1")}, T0)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                log.touch(A, "Manifest")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    everything = log.activities(0, 1000)
    assert [a.index for a in everything] == list(range(81))
    assert [a.type for a in everything] == ["Create"] + ["Update"] * 80
    times = [a.end_time for a in everything]
    assert times == sorted(times)


_WORKER = """
import json, sys, time
from pathlib import Path
from iiif_server.presentation.changes import ChangeLog

db, go = Path(sys.argv[1]), Path(sys.argv[2])
current = {f"iiif/manifests/M-{i:04d}": ("Manifest", f"h{i}") for i in range(300)}
log = ChangeLog(db)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.001)
print(json.dumps([a.index for a in log.record(current)]), flush=True)
"""


def test_two_processes_record_the_same_state_once(tmp_path: Path) -> None:
    """Two gunicorn workers publishing the same state at the same moment append its activities once."""
    db, go = tmp_path / "changes.sqlite", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(db), str(go)], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        go.touch()  # both are initialised and polling: release them together
        outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:  # pragma: no cover - only on failure
                proc.kill()
                proc.communicate()
    assert [proc.returncode for proc in procs] == [0, 0]
    appended = sorted((json.loads(out) for out in outputs), key=len)
    assert appended == [[], list(range(300))]  # one worker appended everything, the other nothing

    log = ChangeLog(db)
    everything = log.activities(0, 1000)
    assert log.count() == 300
    assert {a.type for a in everything} == {"Create"}
    assert [a.object_path for a in everything] == [f"iiif/manifests/M-{i:04d}" for i in range(300)]
    assert len({a.end_time for a in everything}) == 1
