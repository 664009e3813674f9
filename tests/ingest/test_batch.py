"""Batches: layout and names kept, resume, never overwrite, replace with a kept version, fixity, verify, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import pyvips

from iiif_server.ingest.batch import (
    FAILED,
    INGESTED,
    REPLACED,
    SKIPPED,
    Job,
    NotUnderRoot,
    plan,
    process,
    run,
    under_root,
)
from iiif_server.ingest.convert import MasterOptions
from iiif_server.ingest.fixity import FixityCatalogue, sha256_of

OPTIONS = MasterOptions()


def scan(path: Path, width: int = 600, height: int = 400, shade: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    xy = pyvips.Image.xyz(width, height)
    image = (xy[0] % 256).bandjoin([xy[1] % 256, shade]).cast("uchar").copy(interpretation="srgb")
    image.write_to_file(str(path))
    return path


@pytest.fixture
def scans(tmp_path: Path) -> Path:
    folder = tmp_path / "scans"
    scan(folder / "hiện vật" / "KH-0101 mặt trước.tif")
    scan(folder / "hiện vật" / "KH-0101 mặt sau.JPG")
    scan(folder / "le-hoi" / "01.png")
    (folder / ".DS_Store").write_bytes(b"hidden: never ingested")
    return folder


def by_status(outcomes: list) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for outcome in outcomes:
        found.setdefault(outcome.status, []).append(outcome.identifier or outcome.source)
    return {status: sorted(names) for status, names in found.items()}


def test_plan_keeps_the_layout_and_names(scans: Path) -> None:
    nfd = scans / unicodedata.normalize("NFD", "ảnh gốc.png")
    scan(nfd)
    jobs, refused = plan([scans], into="bảo tàng")
    assert refused == []
    assert sorted(job.identifier for job in jobs) == [
        "bảo tàng/hiện vật/KH-0101 mặt sau.tif",
        "bảo tàng/hiện vật/KH-0101 mặt trước.tif",
        "bảo tàng/le-hoi/01.tif",
        "bảo tàng/ảnh gốc.tif",  # NFC whatever the disk holds: identifiers are predictable
    ]
    single, _ = plan([scans / "le-hoi" / "01.png"])
    assert [job.identifier for job in single] == ["01.tif"]


def test_plan_refuses_collisions_and_unknown_files(tmp_path: Path) -> None:
    scan(tmp_path / "a.png")
    scan(tmp_path / "a.jpg")
    (tmp_path / "notes.txt").write_text("not a scan")
    jobs, refused = plan([tmp_path, tmp_path / "missing.tif"])
    assert [job.identifier for job in jobs] == ["a.tif"]
    reasons = {Path(o.source).name: o.reason for o in refused}
    assert reasons["a.png"].startswith("same master name as")
    assert reasons["notes.txt"] == "not an image file (unknown extension)"
    assert reasons["missing.tif"] == "no such file or folder"


def test_batch_ingests_resumes_and_records_fixity(scans: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    jobs, _ = plan([scans])
    first = run(jobs, root, OPTIONS, workers=2)
    assert by_status(first) == {INGESTED: sorted(job.identifier for job in jobs)}
    master = pyvips.Image.new_from_file(str(root / "hiện vật/KH-0101 mặt trước.tif"))
    assert (master.width, master.height, master.get("n-pages")) == (600, 400, 3)  # 600, 300, 150 wide
    catalogue = FixityCatalogue(root)
    entry = catalogue.get("hiện vật/KH-0101 mặt trước.tif")
    assert entry is not None
    assert entry.source_sha256 == sha256_of(scans / "hiện vật" / "KH-0101 mặt trước.tif")
    assert entry.master_sha256 == sha256_of(root / "hiện vật/KH-0101 mặt trước.tif")
    assert (entry.width, entry.height) == (600, 400) and entry.ingested_at.endswith("Z")
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*.tif")}
    again = run(jobs, root, OPTIONS, workers=2)  # an interrupted batch rerun: nothing redone
    assert {o.status for o in again} == {SKIPPED}
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.tif")} == stamps
    assert not [p for p in root.rglob("*") if ".partial" in p.name]


def test_an_interrupted_batch_finishes_the_rest(scans: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    jobs, _ = plan([scans])
    done = process(jobs[0], str(root), OPTIONS, replace=False)
    assert done.status == INGESTED
    # a crash left a partial file behind: it is neither served (hidden) nor in the way
    (root / Path(jobs[1].identifier).parent / f".{Path(jobs[1].identifier).name}.999.partial.tif").write_bytes(b"x")
    rest = run(jobs, root, OPTIONS, workers=1)
    assert by_status(rest) == {
        INGESTED: sorted(job.identifier for job in jobs[1:]),
        SKIPPED: [jobs[0].identifier],
    }


def test_never_overwrites_without_replace_and_keeps_the_old_master(scans: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    source = scans / "le-hoi" / "01.png"
    job = Job(str(source), "le-hoi/01.tif", source.stat().st_size)
    assert process(job, str(root), OPTIONS, replace=False).status == INGESTED
    old_sha = sha256_of(root / "le-hoi/01.tif")
    scan(source, 300, 200, shade=200)  # the digitisation team rescanned it
    job = Job(str(source), "le-hoi/01.tif", source.stat().st_size)
    refused = process(job, str(root), OPTIONS, replace=False)
    assert refused.status == FAILED and "--replace" in refused.reason
    assert sha256_of(root / "le-hoi/01.tif") == old_sha  # untouched
    replaced = process(job, str(root), OPTIONS, replace=True)
    assert replaced.status == REPLACED
    assert pyvips.Image.new_from_file(str(root / "le-hoi/01.tif")).width == 300
    events = FixityCatalogue(root).events("le-hoi/01.tif")
    assert [e[0] for e in events] == ["ingest", "replace"]
    kept = root / str(events[1][2])
    assert kept.parent.name == "le-hoi" and kept.is_relative_to(root / ".versions")
    assert sha256_of(kept) == old_sha  # the previous master, intact


def test_a_master_ingest_did_not_make_is_not_overwritten(scans: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    scan(root / "le-hoi" / "01.tif")  # put there by hand
    before = sha256_of(root / "le-hoi" / "01.tif")
    jobs, _ = plan([scans / "le-hoi"], into="le-hoi")
    outcome = run(jobs, root, OPTIONS)[0]
    assert outcome.status == FAILED and "ingest did not make" in outcome.reason
    assert sha256_of(root / "le-hoi" / "01.tif") == before


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.jpg", b"", "empty file (0 bytes)"),
        ("text.tif", b"just some notes, not a TIFF\n" * 20, "not a readable image"),
    ],
)
def test_bad_files_fail_alone(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    folder = tmp_path / "scans"
    scan(folder / "good.png")
    (folder / name).write_bytes(content)
    jobs, _ = plan([folder])
    outcomes = {Path(o.source).name: o for o in run(jobs, tmp_path / "root", OPTIONS, workers=2)}
    assert outcomes["good.png"].status == INGESTED
    assert outcomes[name].status == FAILED and outcomes[name].reason.startswith(reason)
    assert not (tmp_path / "root" / (Path(name).stem + ".tif")).exists()
    assert [p.name for p in (tmp_path / "root").iterdir() if not p.name.startswith(".")] == ["good.tif"]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iiif_server", *args],
        env={**os.environ, "IIIF_SERVER_CONFIG": os.devnull},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_cli_json_exit_status_and_verify(scans: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (scans / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0broken")
    result = cli("ingest", str(scans), "--images", str(root), "--json", "--workers", "2")
    assert result.returncode == 1  # one file failed
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"ingested": 3, "failed": 1}
    failed = [o for o in summary["outcomes"] if o["status"] == "failed"]
    assert failed[0]["identifier"] == "broken.tif" and failed[0]["reason"].startswith("not a readable image")
    table = cli("ingest", str(scans / "hiện vật"), "--images", str(root), "--into", "hiện vật")
    assert table.returncode == 0, table.stdout + table.stderr
    assert "0 ingested, 0 replaced, 2 skipped, 0 failed" in table.stdout
    ok = cli("verify", "--images", str(root))
    assert ok.returncode == 0 and "verified 3 masters: 0 problem(s)" in ok.stdout
    # bit rot in one master, another deleted: both reported, exit 1
    damaged = root / "hiện vật" / "KH-0101 mặt sau.tif"
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    (root / "le-hoi" / "01.tif").unlink()
    bad = cli("verify", "--images", str(root), "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout) == {
        "verified": 3,
        "problems": [
            {"identifier": "hiện vật/KH-0101 mặt sau.tif", "problem": "checksum mismatch"},
            {"identifier": "le-hoi/01.tif", "problem": "missing"},
        ],
    }
    only = cli("verify", "le-hoi", "--images", str(root))
    assert only.returncode == 1 and "verified 1 masters" in only.stdout


def test_under_root_takes_relative_and_inside_absolute_paths_only(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "out").symlink_to(tmp_path)
    assert under_root(root, "") == "" and under_root(root, str(root)) == ""
    assert under_root(root, str(root / "a" / "b")) == "a/b"
    assert under_root(root, "a/../" + unicodedata.normalize("NFD", "hiện vật")) == "hiện vật"  # NFC, like masters
    for path in ("/elsewhere", str(tmp_path), "../x", "a/../../x", "out/x"):
        with pytest.raises(NotUnderRoot, match="is outside the image root"):
            under_root(root, path)
    with pytest.raises(NotUnderRoot, match="hidden folder"):
        under_root(root, ".fixity")


def test_cli_into_an_absolute_folder_inside_the_root_puts_the_masters_there(scans: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = cli("ingest", str(scans / "le-hoi"), "--images", str(root), "--into", str(root / "lễ hội" / "2026"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 ingested" in result.stdout
    assert files_under(root) == [".fixity", ".fixity/catalogue.sqlite", "lễ hội", "lễ hội/2026", "lễ hội/2026/01.tif"]
    assert FixityCatalogue(root).get("lễ hội/2026/01.tif") is not None


@pytest.mark.parametrize("into", ["{tmp}/elsewhere", "../elsewhere", "a/../../elsewhere", "/"])
def test_cli_into_outside_the_root_is_one_line_and_creates_nothing(scans: Path, tmp_path: Path, into: str) -> None:
    root = tmp_path / "root"
    work = tmp_path / "work"
    work.mkdir()
    before = files_under(tmp_path)
    for extra in ([], ["--queue"]):  # planning for the queue refuses it too, before Redis is asked
        result = cli("ingest", str(scans), "--images", str(root), "--into", into.format(tmp=tmp_path), *extra, cwd=work)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stdout == ""
        assert result.stderr.strip().splitlines() == [
            f"Error: --into {into.format(tmp=tmp_path)!r} is outside the image root {root}"
        ]
        assert files_under(tmp_path) == before  # no root, no <root>/elsewhere, nothing in the working folder


@pytest.mark.slow
def test_cli_verify_checks_exactly_what_path_names(scans: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert cli("ingest", str(scans), "--images", str(root)).returncode == 0
    whole = cli("verify", "--images", str(root))
    assert whole.returncode == 0 and "verified 3 masters: 0 problem(s)" in whole.stdout
    for path in (str(root / "hiện vật"), "hiện vật/", unicodedata.normalize("NFD", "hiện vật")):
        sub = cli("verify", path, "--images", str(root), "--json")
        assert sub.returncode == 0, sub.stderr
        assert json.loads(sub.stdout) == {"verified": 2, "problems": []}
    one = cli("verify", str(root / "le-hoi" / "01.tif"), "--images", str(root), "--json")
    assert json.loads(one.stdout) == {"verified": 1, "problems": []}
    for outside in ("/", str(tmp_path), str(scans / "le-hoi"), "../scans"):
        refused = cli("verify", outside, "--images", str(root))
        assert refused.returncode == 2 and refused.stdout == ""
        assert refused.stderr.strip().splitlines() == [f"Error: PATH {outside!r} is outside the image root {root}"]
    nothing = cli("verify", "le-hoi/02.tif", "--images", str(root), "--json")
    assert nothing.returncode == 1 and nothing.stdout == ""
    assert nothing.stderr.strip().splitlines()[-1] == (
        f"Error: no recorded master under 'le-hoi/02.tif' in the fixity catalogue of {root}"
    )
    # a mistyped root is not a clean bill either, and verify creates nothing there
    wrong = cli("verify", "--images", str(tmp_path / "roto"))
    assert wrong.returncode == 1 and "no fixity catalogue under" in wrong.stderr
    assert not (tmp_path / "roto").exists()
