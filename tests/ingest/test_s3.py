"""Ingest into the S3 bucket (issue 14): the real CLI, `iiif-server worker` and `serve` against SeaweedFS.

Every test works under a prefix of its own in the session's bucket. The one fake is a client that
lies about the ETag of the temporary key: a real store that does so cannot be provoked.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import pyvips

from iiif_server.check import free_port, running_server
from iiif_server.image.s3 import S3Config, S3Store
from iiif_server.ingest.batch import FAILED, INGESTED, Job, process
from iiif_server.ingest.bucket import MASTERS, MasterBucket, ToBucket, _opened, digests, multipart_etag
from iiif_server.ingest.convert import MasterOptions
from iiif_server.ingest.masters import Taken
from tests.access_site import get
from tests.conftest import block_colour, decode, make_pattern, pixel
from tests.s3_store import REGION, s3_store  # noqa: F401
from tests.s3_store import S3Store as Weed

from .test_batch import cli, scan
from .test_queue import queue_env  # noqa: F401

TOLERANCE = 12  # JPEG at Q 90


@pytest.fixture
def bucket(s3_store: Weed, tmp_path: Path) -> Iterator[tuple[Weed, str, Path]]:  # noqa: F811
    """A prefix of this test's own, and a config.toml naming it (credentials only in the environment)."""
    prefix = f"t-{uuid.uuid4().hex[:8]}/"
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[images]
source = "s3"
root = "{tmp_path / "no-root"}"
[s3]
bucket = "{s3_store.bucket}"
prefix = "{prefix}"
endpoint_url = "{s3_store.endpoint_url}"
region = "{REGION}"
cache_dir = "{tmp_path / "chunks"}"
head_seconds = 0.0
[cache]
disk_dir = "{tmp_path / "cache"}"
[manifests]
source = "{tmp_path / "no-export.csv"}"
state_dir = "{tmp_path / "manifests"}"
[access]
state_dir = "{tmp_path / "access"}"
"""
    )
    yield s3_store, prefix, config


def env_of(store: Weed, config: Path, **extra: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("IIIF_SERVER_")}
    credentials = {k: v for k, v in store.env.items() if k.startswith("AWS_")}
    return {**inherited, **credentials, "IIIF_SERVER_CONFIG": str(config), **extra}


def iiif(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iiif_server", *args], env=env, capture_output=True, text=True, timeout=300
    )


def objects(store: Weed, prefix: str) -> dict[str, tuple[str, Any]]:
    """Key (under ``prefix``) -> (ETag, LastModified) of everything there."""
    pages = store.client().get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=prefix)
    return {o["Key"][len(prefix) :]: (o["ETag"], o["LastModified"]) for p in pages for o in p.get("Contents", ())}


def body(store: Weed, key: str) -> bytes:
    data: bytes = store.client().get_object(Bucket=store.bucket, Key=key)["Body"].read()
    return data


def record(store: Weed, prefix: str, identifier: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(body(store, f"{prefix}{MASTERS}{identifier}.json"))
    return found


def masters_in(found: dict[str, tuple[str, Any]]) -> list[str]:
    return sorted(key for key in found if not key.startswith("."))


@pytest.fixture
def scans(tmp_path: Path) -> Path:
    folder = tmp_path / "scans"
    folder.mkdir()
    make_pattern(1200, 900).write_to_file(str(folder / "pattern.png"))
    scan(folder / "hiện vật" / "KH-0101 mặt trước.tif")
    scan(folder / "le-hoi" / "01.jpg")
    return folder


def test_ingest_publishes_checked_masters_keeps_versions_and_serves_them(
    bucket: tuple[Weed, str, Path], scans: Path, tmp_path: Path
) -> None:
    store, prefix, config = bucket
    env = env_of(store, config)
    first = iiif(env, "ingest", str(scans), "--json", "--workers", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads(first.stdout)["counts"] == {"ingested": 3}
    found = objects(store, prefix)
    wanted = ["hiện vật/KH-0101 mặt trước.tif", "le-hoi/01.tif", "pattern.tif"]
    assert masters_in(found) == wanted
    assert not [key for key in found if key.startswith(".ingest/")]  # no temporary key left
    assert sorted(k for k in found if k.startswith(".fixity/masters/")) == [f".fixity/masters/{w}.json" for w in wanted]
    for identifier in wanted:
        data = body(store, prefix + identifier)
        assert hashlib.sha256(data).hexdigest() == record(store, prefix, identifier)["master_sha256"]
        master = pyvips.Image.new_from_buffer(data, "")
        assert master.get("n-pages") >= 2  # a pyramid
    path = tmp_path / "pattern.tif"
    path.write_bytes(body(store, prefix + "pattern.tif"))
    assert pyvips.Image.tiffload(str(path), page=1).width == 600  # the half-size level

    again = iiif(env, "ingest", str(scans), "--json")  # a rerun: nothing written to a real key
    assert again.returncode == 0 and json.loads(again.stdout)["counts"] == {"skipped": 3}
    assert {k: v for k, v in objects(store, prefix).items() if not k.startswith(".")} == {
        k: v for k, v in found.items() if not k.startswith(".")
    }

    old = body(store, prefix + "le-hoi/01.tif")
    scan(scans / "le-hoi" / "01.jpg", 300, 200, shade=200)  # rescanned
    refused = iiif(env, "ingest", str(scans / "le-hoi"), "--into", "le-hoi", "--json")
    assert refused.returncode == 1
    outcome = json.loads(refused.stdout)["outcomes"][0]
    assert outcome["status"] == "failed"
    assert (
        outcome["reason"]
        == "a master from a different original already exists; --replace keeps it in .versions/ and replaces it"
    )
    assert body(store, prefix + "le-hoi/01.tif") == old
    replaced = iiif(env, "ingest", str(scans / "le-hoi"), "--into", "le-hoi", "--replace", "--json")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    summary = json.loads(replaced.stdout)
    assert summary["counts"] == {"replaced": 1}
    kept = summary["outcomes"][0]["reason"].removeprefix("previous master kept as ")
    assert kept.startswith(".versions/le-hoi/01.") and kept.endswith(".tif")
    assert body(store, prefix + kept) == old  # the previous master, intact
    new = body(store, prefix + "le-hoi/01.tif")
    assert pyvips.Image.new_from_buffer(new, "").width == 300
    entry = record(store, prefix, "le-hoi/01.tif")
    assert entry["master_sha256"] == hashlib.sha256(new).hexdigest()
    events = sorted(k for k in objects(store, prefix) if k.startswith(".fixity/events/le-hoi/01.tif/"))
    assert [k.rsplit("-", 1)[1] for k in events] == ["ingest.json", "replace.json"]
    replace_event = json.loads(body(store, prefix + events[1]))
    assert replace_event["previous_version"] == kept
    assert replace_event["previous_master_sha256"] == hashlib.sha256(old).hexdigest()
    assert not [key for key in objects(store, prefix) if key.startswith(".ingest/")]

    served = env_of(store, config, IIIF_SERVER_CACHE_DISK_MAX_MB="0")
    with running_server(["serve", "--workers", "1"], free_port(), served, log=tmp_path / "server.log") as base:
        status, _, info = get(base, "/iiif/3/pattern.tif/info.json")
        assert status == 200, info
        assert (json.loads(info)["width"], json.loads(info)["height"]) == (1200, 900)
        status, headers, tile = get(base, "/iiif/3/pattern.tif/512,0,512,512/512,/0/default.png")
        assert status == 200 and headers["content-type"] == "image/png"
        image = decode(tile)
        for x, y in ((50, 50), (250, 350), (450, 150)):
            expected = block_colour((512 + x) // 100, y // 100)
            assert all(abs(a - b) <= TOLERANCE for a, b in zip(pixel(image, x, y), expected, strict=True)), (x, y)
        status, _, tile = get(base, "/iiif/3/le-hoi%2F01.tif/full/max/0/default.png")
        assert status == 200 and decode(tile).width == 300  # the replacement, at once
        for hidden in (kept, ".fixity/masters/pattern.tif.json", events[0], ".ingest/pattern.tif"):
            status, _, answer = get(base, f"/iiif/3/{quote(hidden, safe='')}/full/max/0/default.png")
            assert status in (400, 404) and answer not in (old, new), hidden
            status, _, answer = get(base, f"/iiif/3/{quote(hidden, safe='')}/info.json")
            assert status in (400, 404), hidden


def test_a_corrupt_scan_fails_alone_with_the_json_of_the_file_version(
    bucket: tuple[Weed, str, Path], scans: Path, tmp_path: Path
) -> None:
    store, prefix, config = bucket
    (scans / "hỏng.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    into_bucket = iiif(env_of(store, config), "ingest", str(scans), "--json", "--workers", "1")
    into_files = cli("ingest", str(scans), "--images", str(tmp_path / "root"), "--json", "--workers", "1")
    assert into_bucket.returncode == into_files.returncode == 1
    bucket_summary, files_summary = json.loads(into_bucket.stdout), json.loads(into_files.stdout)

    def shape(summary: dict[str, Any]) -> list[tuple[Any, ...]]:
        return sorted((o["identifier"], o["status"], o["reason"], o["width"], sorted(o)) for o in summary["outcomes"])

    assert bucket_summary.keys() == files_summary.keys()
    assert bucket_summary["counts"] == files_summary["counts"] == {"ingested": 3, "failed": 1}
    assert shape(bucket_summary) == shape(files_summary)
    found = objects(store, prefix)
    assert masters_in(found) == ["hiện vật/KH-0101 mặt trước.tif", "le-hoi/01.tif", "pattern.tif"]
    assert not [k for k in found if "hỏng" in k]  # no master, no record
    assert not [key for key in found if key.startswith(".ingest/")]


def test_verify_rehashes_the_objects(bucket: tuple[Weed, str, Path], scans: Path) -> None:
    store, prefix, config = bucket
    env = env_of(store, config)
    nothing = iiif(env, "verify")
    assert nothing.returncode == 1 and f"no fixity catalogue under s3://{store.bucket}/{prefix}" in nothing.stderr
    assert iiif(env, "ingest", str(scans)).returncode == 0
    clean = iiif(env, "verify")
    assert clean.returncode == 0, clean.stderr[-2000:]
    assert "verified 3 masters: 0 problem(s)" in clean.stdout
    client = store.client()
    altered = bytearray(body(store, prefix + "pattern.tif"))
    altered[len(altered) // 2] ^= 0xFF  # bit rot: the same size, other bytes
    client.put_object(Bucket=store.bucket, Key=prefix + "pattern.tif", Body=bytes(altered))
    client.delete_object(Bucket=store.bucket, Key=prefix + "le-hoi/01.tif")
    shortened = body(store, prefix + "hiện vật/KH-0101 mặt trước.tif")[:-10]
    client.put_object(Bucket=store.bucket, Key=prefix + "hiện vật/KH-0101 mặt trước.tif", Body=shortened)
    bad = iiif(env, "verify", "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout) == {
        "verified": 3,
        "problems": [
            {"identifier": "hiện vật/KH-0101 mặt trước.tif", "problem": "size differs"},
            {"identifier": "le-hoi/01.tif", "problem": "missing"},
            {"identifier": "pattern.tif", "problem": "checksum mismatch"},
        ],
    }
    table = iiif(env, "verify", "pattern.tif")
    assert table.returncode == 1
    assert table.stdout.splitlines() == ["checksum mismatch  pattern.tif", "verified 1 masters: 1 problem(s)"]
    none_there = iiif(env, "verify", "elsewhere")
    assert none_there.returncode == 1
    assert none_there.stderr.strip().splitlines()[-1] == (
        f"Error: no recorded master under 'elsewhere' in the fixity catalogue of s3://{store.bucket}/{prefix}"
    )


def test_into_and_path_refusals_and_a_read_only_source(bucket: tuple[Weed, str, Path], scans: Path) -> None:
    store, prefix, config = bucket
    env = env_of(store, config)
    name = f"s3://{store.bucket}/{prefix}"
    for into, why in (("../x", "is outside the bucket"), ("/abs", "is outside the bucket"), ("a/.fixity", "hidden")):
        for extra in ([], ["--queue"]):
            result = iiif(env, "ingest", str(scans), "--into", into, *extra)
            assert result.returncode == 2 and result.stdout == ""
            assert len(result.stderr.strip().splitlines()) == 1 and why in result.stderr
            assert result.stderr.startswith(f"Error: --into {into!r}") and name in result.stderr
    assert objects(store, prefix) == {}
    partner = env_of(
        store, config, IIIF_SERVER_IMAGES_SOURCE="http", IIIF_SERVER_HTTP_SOURCE_BASE_URL="https://partner.example/",
        IIIF_SERVER_HTTP_SOURCE_ALLOWED_HOSTS="partner.example",
    )  # fmt: skip
    for args in (["ingest", str(scans)], ["verify"]):
        result = iiif(partner, *args)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.strip().splitlines() == [
            'Error: [images] source = "http" is a partner\'s read-only server: ingest and verify write '
            "and check masters under [images] root or in [s3]'s bucket"
        ]


def test_a_store_that_does_not_answer_is_one_line_not_a_traceback(bucket: tuple[Weed, str, Path], scans: Path) -> None:
    store, prefix, config = bucket
    gone = env_of(
        store, config, IIIF_SERVER_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", IIIF_SERVER_S3_RETRIES="0"
    )
    result = iiif(gone, "verify")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"Error: s3://{store.bucket}/{prefix}: the image store did not answer; try again later"
    )
    ingested = iiif(gone, "ingest", str(scans), "--json", "--workers", "1")
    assert ingested.returncode == 1 and "Traceback" not in ingested.stderr
    reasons = {o["reason"] for o in json.loads(ingested.stdout)["outcomes"]}
    assert reasons == {"cannot write the master: the image store did not answer; try again later"}


class Liar:
    """A boto3 client that reports a wrong ETag for the temporary key: the store "lost" a byte."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def head_object(self, **kwargs: Any) -> Any:
        answer = self.client.head_object(**kwargs)
        if "/.ingest/" in "/" + kwargs["Key"]:
            answer = {**answer, "ETag": '"0123456789abcdef0123456789abcdef"'}
        return answer


def config_of(store: Weed, prefix: str) -> S3Config:
    return S3Config(store.bucket, prefix, store.endpoint_url, REGION)


def test_a_store_reporting_another_etag_publishes_nothing(
    s3_store: Weed,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in s3_store.env.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    prefix = f"t-{uuid.uuid4().hex[:8]}/"
    source = scan(tmp_path / "01.png")
    job = Job(str(source), "01.tif", source.stat().st_size)
    honest = S3Store._connect
    monkeypatch.setattr(S3Store, "_connect", lambda self: Liar(honest(self)))
    outcome = process(job, ToBucket(config_of(s3_store, prefix)), MasterOptions(), replace=False)
    assert outcome.status == FAILED
    assert outcome.reason.startswith("cannot write the master: the store reports ")
    assert "ETag 0123456789abcdef0123456789abcdef" in outcome.reason
    assert objects(s3_store, prefix) == {}  # no real key, no temporary key, no record
    monkeypatch.setattr(S3Store, "_connect", honest)
    _opened.cache_clear()  # the lying client was this process's
    assert process(job, ToBucket(config_of(s3_store, prefix)), MasterOptions(), replace=False).status == INGESTED


def test_conditional_publication_and_multipart_etags(
    s3_store: Weed,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another ingest's master appearing meanwhile is never overwritten (``If-None-Match: *``); a
    multipart upload's ETag is computed locally and checked like a single PUT's."""
    for name, value in s3_store.env.items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    prefix = f"t-{uuid.uuid4().hex[:8]}/"
    staged = tmp_path / "staged.tif"
    staged.write_bytes(os.urandom(11 << 20))  # what is published is not looked at: any bytes will do
    masters = MasterBucket(config_of(s3_store, prefix), part_bytes=5 << 20)  # S3's smallest part
    sha256, md5s = digests(staged, masters.part_bytes)
    assert len(md5s) == 3 and multipart_etag(md5s).endswith("-3")
    published = masters.publish("a/b.tif", staged, replacing=False)
    assert published.sha256 == sha256 == hashlib.sha256(staged.read_bytes()).hexdigest()
    found = objects(s3_store, prefix)
    assert list(found) == ["a/b.tif"] and found["a/b.tif"][0].strip('"') == multipart_etag(md5s)
    with pytest.raises(Taken):
        masters.publish("a/b.tif", tmp_path / "staged.tif", replacing=False)
    assert objects(s3_store, prefix) == found  # untouched, and no temporary key left


def test_queue_and_worker_ingest_into_the_bucket(
    bucket: tuple[Weed, str, Path],
    scans: Path,
    queue_env: dict[str, str],  # noqa: F811
) -> None:
    """The enqueuer plans; a worker (another process, as on another machine) writes to the bucket."""
    store, prefix, config = bucket
    env = {**env_of(store, config), **{k: v for k, v in queue_env.items() if k.startswith("IIIF_SERVER_INGEST_")}}
    queued = iiif(env, "ingest", str(scans), "--queue", "--into", "lô 7")
    assert queued.returncode == 0, queued.stderr[-2000:]
    assert "queued 3 file(s)" in queued.stdout
    assert objects(store, prefix) == {}  # planning writes nothing
    worker = iiif(env, "worker", "--burst")
    assert worker.returncode == 0, worker.stderr[-2000:]
    found = objects(store, prefix)
    assert masters_in(found) == ["lô 7/hiện vật/KH-0101 mặt trước.tif", "lô 7/le-hoi/01.tif", "lô 7/pattern.tif"]
    assert not [key for key in found if key.startswith(".ingest/")]
    data = body(store, prefix + "lô 7/pattern.tif")
    assert hashlib.sha256(data).hexdigest() == record(store, prefix, "lô 7/pattern.tif")["master_sha256"]
    done = json.loads(iiif(env, "ingest", "--status", "--json").stdout)
    assert done["outcomes"] == {"ingested": 3}
    assert iiif(env, "verify", "lô 7").returncode == 0


def test_a_replacement_in_the_bucket_is_announced_to_harvesters(bucket: tuple[Weed, str, Path], tmp_path: Path) -> None:
    store, _, config = bucket
    env = env_of(store, config)
    (tmp_path / "no-export.csv").write_text(  # the export [manifests] source names
        "inventory_no,title_vi,access,rights,images\nKH-1,Ảnh lễ hội,public,,le-hoi/01.tif\n", encoding="utf-8"
    )
    source = scan(tmp_path / "scans" / "01.png")
    assert iiif(env, "ingest", str(tmp_path / "scans"), "--into", "le-hoi").returncode == 0
    assert iiif(env, "manifests", "build").returncode == 0
    scan(source, shade=90)  # rescanned: same size, so the manifest's JSON does not change
    replaced = iiif(env, "ingest", str(tmp_path / "scans"), "--into", "le-hoi", "--replace", "--json")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    summary = json.loads(replaced.stdout)
    assert summary["counts"] == {"replaced": 1}
    assert summary["updated"] == ["iiif/manifests/KH-1"]


def test_a_replacement_by_ingest_or_a_purge_shows_at_once_however_long_objects_are_trusted(
    bucket: tuple[Weed, str, Path], tmp_path: Path
) -> None:
    """With ``head_seconds`` an hour (few HEADs), ``ingest --replace`` and ``cache purge`` still show
    the new master within a second or two: every node forgets what it located when the purge epoch
    moves. A replacement behind the server's back waits for ``head_seconds`` (tests/image/test_ranged.py)
    or a purge."""
    store, prefix, config = bucket
    config.write_text(config.read_text().replace("head_seconds = 0.0", "head_seconds = 3600.0"))
    env = env_of(store, config, IIIF_SERVER_CACHE_DISK_MAX_MB="64")  # the purge epoch lives in a shared tier
    folder = tmp_path / "first"
    folder.mkdir()
    make_pattern(1200, 900).write_to_file(str(folder / "pattern.png"))
    assert iiif(env, "ingest", str(folder), "--workers", "1").returncode == 0
    tile = "/iiif/3/pattern.tif/0,0,256,256/256,/0/default.png"

    def red(base: str) -> int:
        status, _, data = get(base, tile)
        assert status == 200, data
        return int(pixel(decode(data), 10, 10)[0])

    def shows(base: str, wanted: Any) -> bool:
        for _ in range(50):
            if wanted(red(base)):
                return True
            time.sleep(0.1)
        return False

    with running_server(["serve", "--workers", "2"], free_port(), env, log=tmp_path / "server.log") as base:
        assert red(base) < 40 and red(base) < 40  # block (0, 0) of the pattern; both workers
        again = tmp_path / "again"
        again.mkdir()
        make_pattern(1200, 900).invert().copy(interpretation="srgb").write_to_file(str(again / "pattern.png"))
        replaced = iiif(env, "ingest", str(again), "--replace", "--json", "--workers", "1")
        assert json.loads(replaced.stdout)["counts"] == {"replaced": 1}, replaced.stderr[-2000:]
        assert shows(base, lambda value: value > 215)  # within 5 s, not an hour
        time.sleep(1.2)  # each worker compares the purge epoch at most once a second
        assert all(red(base) > 215 for _ in range(6))  # every worker
        original = tmp_path / "behind.tif"
        make_pattern(1200, 900).tiffsave(str(original), tile=True, pyramid=True, compression="jpeg", Q=90)
        store.client().put_object(Bucket=store.bucket, Key=prefix + "pattern.tif", Body=original.read_bytes())
        purged = iiif(env, "cache", "purge", "pattern.tif")
        assert purged.returncode == 0, purged.stderr[-2000:]
        assert shows(base, lambda value: value < 40)
        time.sleep(1.2)
        assert all(red(base) < 40 for _ in range(6))
