"""A small cluster on loopback: its own Redis, N ``iiif-server serve`` nodes, HAProxy in front.

The nodes share what nodes on separate machines would share: one image root (a shared mount) or, given
``bucket=Bucket(...)``, one bucket of an S3-compatible store (``[images] source = "s3"``: endpoint,
bucket, prefix and credentials go to each node as environment; each node has its own chunk cache and no
image folder), one collection export, one ``[manifests] state_dir`` (the writer's Change Discovery
history, read by the others), and Redis as the cache tier (``[cache] redis_url``). Node 1 is the
``[manifests] role = "writer"``, the others ``"reader"``. HAProxy balances round-robin, checks
``/health/ready``, retries idempotent requests on another node when a connection fails or a node dies
without answering, and sends ``/iiif/activity/`` to the writer (readers as backup).

Importable by the tests (``cluster()`` is a context manager that stops and removes everything), and
runnable::

    python bench/cluster/cluster.py --nodes 2 [--pin] [--workers 1] [--serve]   # start, print, stop
    python bench/cluster/cluster.py --s3 http://127.0.0.1:8333/masters [--s3-prefix p/]   # nodes on a bucket
    CLUSTER_PASSWORD=... python bench/cluster/cluster.py --access lan [--separate-state] [--sticky] --serve
    python bench/cluster/cluster.py --throughput [--load tiles|renders] [--rounds 3] [--seconds 5]  # 1 vs 2 nodes

``--pin`` runs node *i* under ``taskset -c i-1`` (one core each).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyvips

from iiif_server.check import free_port, wait_until_up
from iiif_server.config import CONFIG_ENV, ENV_PREFIX

BENCH = Path(__file__).resolve().parent.parent
#: Debian installs it in /usr/sbin, which a non-root PATH may lack.
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
#: The export's columns (the museum's spreadsheet, docs/manifests.md).
HEADER = [
    "inventory_no", "title_vi", "title_en", "object_type", "heritage_rank", "date", "period", "material",
    "dimensions_cm", "site", "description_vi", "description_en", "access", "rights", "attribution_vi",
    "attribution_en", "images",
]  # fmt: skip
RIGHTS = "http://creativecommons.org/licenses/by/4.0/"
#: HAProxy's health check: a node is out when its image root is unreadable or its manifests are not built,
#: but not when the *shared* Redis is down: every node would fail at once, turning a cache outage (nodes
#: serve uncached) into a total one. The body names each check (iiif_server/health.py).
HEALTH_EXPECT = r'"images":"ok".*"manifests":"ok"'


def make_collection(
    folder: Path, images: int = 3, size: int = 2048, restricted: tuple[str, ...] = ()
) -> tuple[Path, Path]:
    """Pyramidal JPEG-tiled TIFFs ``obj-N.tif`` (distinct colour ramps) and an export naming them, each
    record ``public`` except those of the images named in ``restricted`` (level ``restricted``).

    Returns (image root, export path).
    """
    root = folder / "images"
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in range(1, images + 1):
        xy = pyvips.Image.xyz(size, size)
        picture = ((xy[0] * 255 / size).cast("uchar")).bandjoin([(xy[1] * 255 / size).cast("uchar"), 40 * n])
        picture.copy(interpretation="srgb").tiffsave(
            str(root / f"obj-{n}.tif"), tile=True, pyramid=True, compression="jpeg", Q=85, tile_width=256,
            tile_height=256,
        )  # fmt: skip
        level = "restricted" if f"obj-{n}.tif" in restricted else "public"
        rows.append(
            [f"KH-CL-{n:04d}", f"Hiện vật {n}", f"Object {n}", "hiện vật", "", "", "", "", "", "Kho", "", "",
             level, RIGHTS, "", "", f"obj-{n}.tif"]
        )  # fmt: skip
    export = write_export(folder / "export.csv", rows)
    return root, export


def write_export(path: Path, rows: list[list[str]]) -> Path:
    """The export, replaced atomically (a node never reads half a file)."""
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    partial.replace(path)
    return path


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f}s")


def _stop(process: subprocess.Popen[bytes], group: bool = True, timeout: float = 15.0) -> None:
    """SIGTERM (to the whole process group: gunicorn's master and workers), then SIGKILL if it lingers."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, signal.SIGTERM)
            else:
                process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):  # workers orphaned by a killed master
        if group:
            os.killpg(process.pid, signal.SIGKILL)
    if process.poll() is None:
        process.kill()
        process.wait(timeout=5)


@dataclass(frozen=True)
class Bucket:
    """An S3-compatible bucket the nodes read their masters from (``[images] source = "s3"``).

    Credentials go to each node the way a deployment gives them: boto3's environment variables.
    """

    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str
    prefix: str = ""
    region: str = "us-east-1"
    head_seconds: float = 60.0  # the server's default; forgotten at a purge

    @classmethod
    def from_url(cls, url: str, prefix: str = "") -> Bucket:
        """``ENDPOINT/BUCKET`` (a command line's ``--s3``), credentials from boto3's environment variables."""
        endpoint, _, name = url.rstrip("/").rpartition("/")
        keys = os.environ.get("AWS_ACCESS_KEY_ID", ""), os.environ.get("AWS_SECRET_ACCESS_KEY", "")
        return cls(endpoint, name, *keys, prefix=prefix)

    def env(self, chunks: Path) -> dict[str, str]:
        """One node's settings for the bucket; ``chunks`` is its own chunk cache (never shared between nodes)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",  # no instance-role probe on loopback
            f"{ENV_PREFIX}IMAGES_SOURCE": "s3",
            f"{ENV_PREFIX}S3_BUCKET": self.bucket,
            f"{ENV_PREFIX}S3_PREFIX": self.prefix,
            f"{ENV_PREFIX}S3_ENDPOINT_URL": self.endpoint_url,
            f"{ENV_PREFIX}S3_REGION": self.region,
            f"{ENV_PREFIX}S3_HEAD_SECONDS": str(self.head_seconds),
            f"{ENV_PREFIX}S3_CACHE_DIR": str(chunks),
        }

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}),
        )

    def upload(self, images: Path) -> list[str]:
        """Every file under ``images`` to the key ``prefix + its relative path``; the identifiers."""
        client = self.client()
        names = []
        for path in sorted(p for p in images.rglob("*") if p.is_file()):
            name = path.relative_to(images).as_posix()
            client.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=path.read_bytes())
            names.append(name)
        return names


@dataclass(frozen=True)
class Access:
    """Logins on the nodes (docs/access.md, docs/scaling.md "Accounts and sessions in a cluster").

    The images named in ``restricted`` get records at level ``restricted`` (degraded for anonymous
    clients); ``accounts`` (name, password) are made with ``iiif-server users add --levels restricted``,
    as an operator does, in each ``[access] state_dir``: one for all nodes (``shared_state``: one host,
    or a folder they share), else one per node with the same accounts created on each (machines
    sharing nothing). The nodes trust the balancer as a proxy (``[server] trusted_proxies``: it appends
    the client's address to ``X-Forwarded-For``), so logins are limited and audited per client.
    """

    restricted: tuple[str, ...] = ("obj-3.tif",)
    accounts: tuple[tuple[str, str], ...] = ()
    shared_state: bool = True
    session_cache_seconds: float = 1.0
    external_networks: str = ""  # ``[access] external_networks``: staff networks, open with no login
    external_header: str = ""  # ``[access] external_header``: the balancer removes a client's own

    def state_dir(self, cluster_folder: Path, node: str) -> Path:
        return (cluster_folder if self.shared_state else cluster_folder / node) / "access"

    def env(self, state: Path) -> dict[str, str]:
        return {
            f"{ENV_PREFIX}ACCESS_STATE_DIR": str(state),
            f"{ENV_PREFIX}ACCESS_SESSION_CACHE_SECONDS": str(self.session_cache_seconds),
            f"{ENV_PREFIX}SERVER_TRUSTED_PROXIES": "127.0.0.1",  # the balancer
            f"{ENV_PREFIX}ACCESS_EXTERNAL_NETWORKS": self.external_networks,
            f"{ENV_PREFIX}ACCESS_EXTERNAL_HEADER": self.external_header,
        }

    def add_accounts(self, state: Path) -> None:
        """``iiif-server users add`` for every account (the password on stdin, never in ``ps``)."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
        env |= {CONFIG_ENV: os.devnull, f"{ENV_PREFIX}ACCESS_STATE_DIR": str(state)}
        for name, password in self.accounts:
            command = [sys.executable, "-m", "iiif_server", "users", "add", name, "--levels", "restricted"]
            done = subprocess.run(
                [*command, "--password-stdin"], input=password + "\n", env=env, capture_output=True, text=True
            )
            if done.returncode != 0:
                raise RuntimeError(f"users add {name}: {done.stderr}")


@dataclass
class Redis:
    """A private redis-server (no persistence), stoppable and restartable on the same port."""

    port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        command += ["no", "--dir", str(self.folder), "--logfile", str(self.folder / "redis.log")]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
        _wait_port(self.port)

    def kill(self) -> None:
        """SIGKILL: an outage, not a shutdown."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None


@dataclass
class Node:
    """One ``iiif-server serve`` (gunicorn master + workers in their own process group)."""

    name: str
    port: int
    role: str
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL to master and workers at once: a machine lost, not a graceful stop."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)


@dataclass
class Cluster:
    folder: Path
    redis: Redis
    nodes: list[Node]
    port: int  # HAProxy's
    stats_socket: Path
    export: Path
    images: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    bucket: Bucket | None = None  # the masters' bucket, or None: the shared folder ``images``

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def server_stats(self, backend: str = "nodes") -> dict[str, dict[str, str]]:
        """HAProxy's ``show stat`` CSV for ``backend``'s servers: name -> row (``scur``: in flight now)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.stats_socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        lines = data.decode().lstrip("# ").splitlines()
        rows = csv.DictReader(lines)
        return {
            row["svname"]: row
            for row in rows
            if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def wait_status(self, name: str, status: str, timeout: float = 15.0) -> None:
        """Until HAProxy's check marks server ``name`` UP or DOWN."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server_stats().get(name, {}).get("status", "").startswith(status):
                return
            time.sleep(0.1)
        raise RuntimeError(f"HAProxy never saw {name} {status}: {self.server_stats().get(name)}")


def node_env(
    cluster_folder: Path,
    name: str,
    role: str,
    redis_url: str,
    images: Path,
    export: Path,
    shared_state: bool = True,
    bucket: Bucket | None = None,
    access: Access | None = None,
) -> dict[str, str]:
    """Only the settings named here (as ``check.running_server``): no config.toml, no inherited IIIF_SERVER_*.

    ``shared_state``: one ``[manifests] state_dir`` for all (a shared mount), else one per node (machines
    sharing nothing but the export, Redis and the balancer). ``bucket``: masters from there (``images``
    is then a folder that need not exist), each node with its own chunk cache. ``access``: logins, with
    the accounts in ``access.state_dir``.
    """
    inherited = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
    own = cluster_folder / name
    (own / "metrics").mkdir(parents=True, exist_ok=True)
    store = bucket.env(own / "s3-chunks") if bucket is not None else {}
    logins = access.env(access.state_dir(cluster_folder, name)) if access is not None else {}
    return {
        **inherited,
        **store,
        **logins,
        CONFIG_ENV: os.devnull,
        f"{ENV_PREFIX}IMAGES_ROOT": str(images),
        f"{ENV_PREFIX}MANIFESTS_SOURCE": str(export),
        f"{ENV_PREFIX}MANIFESTS_STATE_DIR": str((cluster_folder if shared_state else own) / "state"),
        f"{ENV_PREFIX}MANIFESTS_ROLE": role,
        f"{ENV_PREFIX}MANIFESTS_CHECK_INTERVAL": "0.5",
        f"{ENV_PREFIX}CACHE_REDIS_URL": redis_url,
        f"{ENV_PREFIX}CACHE_DISK_MAX_MB": "0",  # the shared tier is Redis; nothing per machine on disk
        f"{ENV_PREFIX}CACHE_DISK_DIR": str(own / "cache"),
        f"{ENV_PREFIX}METRICS_DIRECTORY": str(own / "metrics"),  # not a mkdtemp a SIGKILL would leave behind
    }


def haproxy_config(
    port: int,
    stats_socket: Path,
    nodes: list[Node],
    shared_state: bool = True,
    sticky: bool = False,
    removed: tuple[str, ...] = (),
) -> str:
    """Round-robin over the nodes; L7 retries of idempotent requests; Change Discovery at the writer
    (the readers its backups only if they read the writer's history from a shared state_dir).

    ``sticky``: a client keeps the node that first answered it (HAProxy's ``SERVERID`` cookie), what
    logins need on machines that share no ``[access] state_dir``. ``removed``: request headers the nodes
    believe from the balancer (``[access] external_header``) that a client must not send through it."""
    strip = "".join(f"\n    http-request del-header {name}" for name in removed)
    pin = "\n    cookie SERVERID insert indirect nocache" if sticky else ""
    servers = "\n".join(
        f"    server {n.name} 127.0.0.1:{n.port} check" + (f" cookie {n.name}" if sticky else "") for n in nodes
    )
    writer = "\n".join(
        f"    server {n.name} 127.0.0.1:{n.port} check{'' if n.role == 'writer' else ' backup'}"
        for n in nodes
        if n.role == "writer" or shared_state
    )
    check = f"""    option httpchk GET /health/ready
    http-check expect rstring '{HEALTH_EXPECT}'
    timeout check 3s
    default-server inter 500ms fall 3 rise 2"""
    return f"""global
    maxconn 4096
    stats socket {stats_socket} mode 600 level admin

defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    # A request whose node refused the connection or died before answering goes to another node:
    # only GET/HEAD (idempotent); a node that sent part of an answer is not retried (the client saw bytes).
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response
    # The client's address, appended (the node reads the last entry, and only from the balancer).
    option forwardfor

frontend iiif
    bind 127.0.0.1:{port}
    http-request disable-l7-retry unless METH_GET || METH_HEAD{strip}
    acl activity path_beg /iiif/activity/
    use_backend writer if activity
    default_backend nodes

backend nodes
    balance roundrobin{pin}
{check}
{servers}

backend writer
{check}
{writer}
"""


def _start_node(node: Node, env: dict[str, str], workers: int, core: int | None) -> None:
    command = [sys.executable, "-m", "iiif_server", "serve", "--workers", str(workers)]
    command += ["--port", str(node.port), "--host", "127.0.0.1"]
    if core is not None:
        command = ["taskset", "-c", str(core), *command]
    with node.log.open("ab") as log:
        node.process = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)


@contextlib.contextmanager
def cluster(
    nodes: int = 2,
    workers: int = 1,
    pin: bool = False,
    folder: Path | None = None,
    images: Path | None = None,
    export: Path | None = None,
    shared_state: bool = True,
    bucket: Bucket | None = None,
    access: Access | None = None,
    sticky: bool = False,
) -> Iterator[Cluster]:
    """Redis, ``nodes`` serving nodes and HAProxy, up and checked healthy; all stopped and removed after.

    Without ``images``/``export`` a small collection is made in the cluster's folder. With ``bucket`` the
    nodes read their masters from it (``[images] source = "s3"``) and have no image folder at all: a
    collection made here is uploaded to the bucket and its local files deleted; ``images`` given with a
    bucket is only the (absent) root the nodes are told, proof that nothing is read from disk.
    ``access``: logins (its images restricted in a collection made here, its accounts made in each
    access state folder before the nodes start); ``sticky``: HAProxy pins each client to a node.
    """
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="iiif-cluster-")))
        if images is None or export is None:
            images, export = make_collection(folder, restricted=access.restricted if access else ())
            if bucket is not None:
                bucket.upload(images)
                shutil.rmtree(images)
        redis = Redis(free_port(), folder / "redis")
        stack.callback(redis.stop)
        redis.start()
        members = [
            Node(f"node{i}", free_port(), "writer" if i == 1 else "reader", folder / f"node{i}.log")
            for i in range(1, nodes + 1)
        ]
        if access is not None:
            for state in {access.state_dir(folder, node.name) for node in members}:
                access.add_accounts(state)
        for i, node in enumerate(members):
            stack.callback(node.stop)
            env = node_env(folder, node.name, node.role, redis.url, images, export, shared_state, bucket, access)
            _start_node(node, env, workers, i if pin else None)
            if node.role == "writer":  # readers serve the writer's history: let it exist first
                _wait_ready(node)
        for node in members:
            _wait_ready(node)
        port, stats = free_port(), folder / "haproxy.sock"
        config = folder / "haproxy.cfg"
        removed = (access.external_header,) if access is not None and access.external_header else ()
        config.write_text(haproxy_config(port, stats, members, shared_state, sticky, removed))
        checked = subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True)
        if checked.returncode != 0:
            raise RuntimeError(f"haproxy rejects {config}: {checked.stdout}{checked.stderr}")
        log = stack.enter_context((folder / "haproxy.log").open("ab"))
        haproxy = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdout=log, stderr=log, start_new_session=True)
        stack.callback(_stop, haproxy)
        result = Cluster(folder, redis, members, port, stats, export, images, [haproxy], bucket)
        _wait_port(port)
        for node in members:
            result.wait_status(node.name, "UP")
        yield result


def _wait_ready(node: Node, timeout: float = 60.0) -> None:
    try:
        wait_until_up(node.url + "/health/ready", timeout, node.process)
    except RuntimeError as error:
        raise RuntimeError(f"{node.name}: {error}\n{node.log.read_text(errors='replace')[-2000:]}") from None


def get(url: str, timeout: float = 30.0) -> tuple[int, bytes]:
    """Status and body; an HTTP error status is an answer, not an exception."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def renders(node: Node) -> float:
    """``iiif_renders_total`` summed over the node's workers (127.0.0.1 may scrape /metrics)."""
    return _counter(node, "iiif_renders_total")


def store_bytes(node: Node) -> float:
    """``iiif_store_bytes_total``: bytes of masters the node has read from the bucket (ranged GETs)."""
    return _counter(node, "iiif_store_bytes_total")


def _counter(node: Node, name: str) -> float:
    """A counter of the node's /metrics, summed over its workers and labels (0 if never incremented)."""
    _, body = get(node.url + "/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


# -- throughput ------------------------------------------------------------------------------------------


#: wrk scripts: random tiles of every level (mostly stored JPEG tiles passed through: microseconds per tile,
#: so HAProxy and wrk weigh as much as the nodes), or random rendered views (the nodes' CPU dominates).
LOADS = {
    "tiles": (BENCH / "random_tiles.lua", ["256", "/iiif/3/"]),
    "renders": (BENCH / "cluster" / "random_renders.lua", []),
}


def wrk_load(url: str, load: str, identifier: str, size: int, seconds: float, connections: int, seed: int) -> float:
    """One of LOADS for ``seconds``: requests per second; any non-200 or socket error is an error."""
    sys.path.insert(0, str(BENCH))
    from run import parse_wrk  # bench/run.py: one parser of wrk's output

    script, extra = LOADS[load]
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
    command += ["-s", str(script), url, "--", identifier, str(size), str(size), *extra, str(seed)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=True)
    result = parse_wrk(done.stdout)
    if result.non_2xx or any(result.socket_errors.values()):
        raise RuntimeError(f"wrk saw errors: {done.stdout}")
    return float(result.rps)


def throughput(
    rounds: int = 3, seconds: float = 5.0, workers: int = 2, connections: int = 16, load: str = "tiles"
) -> dict[str, object]:
    """1 node on core 0 vs 2 nodes on cores 0 and 1, ``load`` via HAProxy; median of ``rounds`` each.

    Each round uses a fresh seed over an 8192² image, so most requests are new to every node's memory
    cache (and the shared Redis tier) within the round, as a crowd panning different pictures would be.
    HAProxy and wrk are not pinned: with two cores they share them with the nodes.
    """
    size = 8192
    with tempfile.TemporaryDirectory(prefix="iiif-cluster-bench-") as base:
        folder = Path(base)
        images, export = make_collection(folder, images=1, size=size)
        identifier = "obj-1.tif"
        rates: dict[int, list[float]] = {1: [], 2: []}
        for round_ in range(rounds):
            for count in (1, 2):
                run = folder / f"run-{round_}-{count}"
                with cluster(count, workers, pin=True, folder=run, images=images, export=export) as c:
                    wrk_load(c.url, load, identifier, size, 1, connections, seed=10_000 + round_)  # warm-up
                    rates[count].append(wrk_load(c.url, load, identifier, size, seconds, connections, seed=round_))
                shutil.rmtree(run, ignore_errors=True)
        one, two = statistics.median(rates[1]), statistics.median(rates[2])
        return {"one_node": rates[1], "two_nodes": rates[2], "median_1": one, "median_2": two, "ratio": two / one}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers per node")
    parser.add_argument("--pin", action="store_true", help="node i on core i-1 (taskset)")
    parser.add_argument("--serve", action="store_true", help="keep running until Ctrl-C")
    parser.add_argument("--throughput", action="store_true", help="1 vs 2 pinned nodes, random tiles via wrk")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--load", choices=sorted(LOADS), default="tiles", help="what wrk asks for")
    parser.add_argument(
        "--s3", metavar="ENDPOINT/BUCKET", help="masters uploaded to this bucket, nodes without an image folder "
        "(credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
    )  # fmt: skip
    parser.add_argument("--s3-prefix", default="", help="key prefix in the bucket")
    parser.add_argument(
        "--access", metavar="ACCOUNT", help="obj-3.tif restricted; this account (level restricted, its password "
        "from $CLUSTER_PASSWORD) made with `iiif-server users add` in every access state folder",
    )  # fmt: skip
    parser.add_argument("--separate-state", action="store_true", help="one state folder per node (no sharing)")
    parser.add_argument("--sticky", action="store_true", help="HAProxy pins each client to a node (SERVERID)")
    args = parser.parse_args()
    access = None
    if args.access:
        account = (args.access, os.environ.get("CLUSTER_PASSWORD", ""))
        access = Access(accounts=(account,), shared_state=not args.separate_state)
    bucket = None
    if args.s3:
        bucket = Bucket.from_url(args.s3, args.s3_prefix)
    if args.throughput:
        result = throughput(args.rounds, args.seconds, args.workers, load=args.load)
        print(f"1 node:  {result['one_node']} req/s (median {result['median_1']:.0f})")
        print(f"2 nodes: {result['two_nodes']} req/s (median {result['median_2']:.0f})")
        print(f"ratio 2/1 = {result['ratio']:.2f}")
        return
    shared = not args.separate_state
    with cluster(args.nodes, args.workers, args.pin, shared_state=shared, bucket=bucket, access=access,
                 sticky=args.sticky) as c:  # fmt: skip
        source = f"bucket {bucket.endpoint_url}/{bucket.bucket}" if bucket else f"folder {c.images}"
        print(f"balancer {c.url}  redis {c.redis.url}  folder {c.folder}  masters: {source}")
        for node in c.nodes:
            print(f"  {node.name} ({node.role}) {node.url}")
        status, body = get(c.url + "/iiif/3/obj-1.tif/info.json")
        print(f"GET /iiif/3/obj-1.tif/info.json via HAProxy: {status}, {len(body)} bytes")
        if args.serve:
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)


if __name__ == "__main__":
    main()
