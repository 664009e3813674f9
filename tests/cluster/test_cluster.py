"""A real small cluster (bench/cluster/cluster.py): Redis, two ``iiif-server serve`` nodes, HAProxy.

Through the balancer and each node directly: every node serves every image; a derivative rendered by
one node is served by the other from the shared Redis tier (render counters from each node's
/metrics); a node killed mid-load costs at most its in-flight requests; Redis killed and restarted
mid-load costs nothing but caching; Change Discovery is one stream, recorded by the writer only.
"""

from __future__ import annotations

import http.client
import importlib.util
import io
import json
import random
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import Image

HARNESS = Path(__file__).resolve().parents[2] / "bench" / "cluster" / "cluster.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_cluster", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bc = _load()
REPO = HARNESS.parents[2]
pytestmark = pytest.mark.skipif(
    not (shutil.which("haproxy") or Path("/usr/sbin/haproxy").exists()) or not shutil.which("redis-server"),
    reason="needs Debian's haproxy and redis-server (the README's test command installs both)",
)
SIZE = 2048  # the harness's images: obj-1.tif .. obj-3.tif, red = x ramp, green = y ramp, blue = 40 * n


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with bc.cluster(nodes=2, workers=1, folder=tmp_path_factory.mktemp("cluster")) as running:
        yield running


def _pixel(body: bytes, x: int, y: int) -> tuple[int, ...]:
    image = Image.open(io.BytesIO(body)).convert("RGB")
    return tuple(image.getpixel((x, y)))


def _run_load(
    url: Callable[[int], str], during: Callable[[], None], after: float = 1.0, threads: int = 6
) -> Counter[str]:
    """``threads`` clients asking ``url(random)`` in a loop from a second before ``during()`` runs until
    ``after`` seconds after it returned; the outcome counts (status, or the client's error)."""
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            try:
                status, _ = bc.get(url(rng.randrange(1_000_000)), timeout=20)
                outcome = str(status)
            except (OSError, http.client.HTTPException) as error:  # refused, reset, or a body cut short
                outcome = type(error).__name__
            with lock:
                outcomes[outcome] += 1

    workers = [threading.Thread(target=client, args=(seed,)) for seed in range(threads)]
    for worker in workers:
        worker.start()
    try:
        time.sleep(1.0)
        during()
        time.sleep(after)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    return outcomes


def test_every_node_serves_every_image_directly_and_through_the_balancer(shared: Any) -> None:
    for n in (1, 2, 3):
        for base in [node.url for node in shared.nodes] + [shared.url] * 2:
            status, body = bc.get(f"{base}/iiif/3/obj-{n}.tif/info.json")
            info = json.loads(body)
            assert status == 200 and (info["width"], info["height"]) == (SIZE, SIZE)
            assert info["id"] == f"{base}/iiif/3/obj-{n}.tif"
            status, body = bc.get(f"{base}/iiif/3/obj-{n}.tif/full/64,64/0/default.png")
            assert status == 200
            red, green, blue = _pixel(body, 48, 16)
            assert abs(red - 48 * 4) <= 8 and abs(green - 16 * 4) <= 8 and abs(blue - 40 * n) <= 8
    sent = {name: int(row["stot"]) for name, row in shared.server_stats().items()}
    assert all(count >= 3 for count in sent.values()), sent  # round-robin reached both nodes


def test_a_derivative_rendered_by_one_node_is_served_by_the_other_from_redis(shared: Any) -> None:
    first, second = shared.nodes
    path = "/iiif/3/obj-2.tif/200,300,700,500/301,/0/default.png"
    before = bc.renders(first), bc.renders(second)
    status, rendered = bc.get(first.url + path)
    assert status == 200
    assert bc.renders(first) == before[0] + 1
    time.sleep(0.3)
    status, cached = bc.get(second.url + path)
    assert status == 200 and cached == rendered
    assert Image.open(io.BytesIO(cached)).size == (301, 215)
    assert bc.renders(second) == before[1]  # no render: the bytes came from Redis
    for _ in range(4):  # and through the balancer, whichever node answers
        assert bc.get(shared.url + path) == (200, rendered)
    assert (bc.renders(first), bc.renders(second)) == (before[0] + 1, before[1])


def test_killing_a_node_mid_load_costs_at_most_its_in_flight_requests(tmp_path: Path) -> None:
    with bc.cluster(nodes=2, workers=1, folder=tmp_path / "c") as running:
        victim = running.nodes[0]  # the writer: Change Discovery must survive it too
        stream = _stream(running.url)
        in_flight: list[int] = []

        def kill() -> None:
            in_flight.append(int(running.server_stats()[victim.name]["scur"]))
            victim.kill()

        # Renders of random widths: tens of milliseconds each, so requests are in flight at the kill.
        outcomes = _run_load(
            lambda i: f"{running.url}/iiif/3/obj-{i % 3 + 1}.tif/full/{200 + i % 600},/0/default.jpg", kill, after=2.0
        )
        failed = sum(count for outcome, count in outcomes.items() if outcome != "200")
        row = running.server_stats()[victim.name]
        print(
            f"node killed mid-load: {dict(outcomes)}, in flight at the kill: {in_flight[0]}, "
            f"HAProxy retries {row['wretr']}, redispatches {row['wredis']}"
        )
        assert outcomes["200"] > 20, outcomes
        assert failed <= in_flight[0], (outcomes, in_flight)
        running.wait_status(victim.name, "DOWN")
        for i in range(6):
            status, body = bc.get(f"{running.url}/iiif/3/obj-1.tif/full/{90 + i},/0/default.jpg")
            assert status == 200 and Image.open(io.BytesIO(body)).size[0] == 90 + i, (body, running.server_stats())
        assert _stream(running.url) == stream  # the reader (its backup) serves the writer's shared history


def test_redis_killed_and_restarted_mid_load_serves_uncached_then_caches_again(shared: Any) -> None:
    first, second = shared.nodes
    seen: dict[str, Any] = {}

    def fresh(tag: int) -> str:
        return f"/iiif/3/obj-3.tif/full/{700 + tag},/0/default.jpg"

    def outage() -> None:
        shared.redis.kill()
        time.sleep(0.5)
        # Uncached: a render by one node is rendered again by the other (no shared tier to find it in).
        before = bc.renders(first), bc.renders(second)
        assert bc.get(first.url + fresh(0))[0] == 200 and bc.get(second.url + fresh(0))[0] == 200
        seen["outage renders"] = (bc.renders(first) - before[0], bc.renders(second) - before[1])
        seen["ready during outage"] = bc.get(first.url + "/health/ready")
        seen["balancer states"] = {name: row["status"] for name, row in shared.server_stats().items()}
        shared.redis.start()
        # Cached again: once a node's Redis client retries, its render is the other node's cache hit.
        for tag in range(1, 40):
            before = bc.renders(second)
            assert bc.get(first.url + fresh(tag))[0] == 200
            time.sleep(0.2)
            assert bc.get(second.url + fresh(tag))[0] == 200
            if bc.renders(second) == before:
                seen["cached again after"] = tag
                return
            time.sleep(0.3)

    def tile(i: int) -> str:  # a dozen renders, warmed in both nodes' memory first: the load renders nothing
        return f"/iiif/3/obj-{i % 3 + 1}.tif/{i % 4 * 256},0,256,256/{100 + i % 12},/0/default.jpg"

    for i in range(12):
        for node in shared.nodes:
            assert bc.get(node.url + tile(i))[0] == 200
    outcomes = _run_load(lambda i: shared.url + tile(i), outage)
    print(f"Redis killed and restarted mid-load: {dict(outcomes)}, {seen}")
    assert set(outcomes) == {"200"}, outcomes  # never a 503 (nor anything else) for a cache outage
    assert seen["outage renders"] == (1, 1)
    status, body = seen["ready during outage"]
    assert status == 503 and json.loads(body)["checks"]["redis"] == "unreachable"
    assert all(state.startswith("UP") for state in seen["balancer states"].values()), seen
    assert "cached again after" in seen, seen


def _stream(base: str) -> dict[str, Any]:
    """The activity stream's collection, its ids relative (each node names itself as the request's host)."""
    status, body = bc.get(base + "/iiif/activity/all-changes")
    assert status == 200, body
    document: dict[str, Any] = json.loads(body.decode().replace(base, ""))
    return document


def _last_page(base: str) -> list[dict[str, Any]]:
    """The newest activities, ids relative."""
    last = _stream(base)["last"]["id"]
    status, body = bc.get(base + last)
    assert status == 200
    items: list[dict[str, Any]] = json.loads(body.decode().replace(base, ""))["orderedItems"]
    return items


def _edit_description(export: Path, inventory: str, text: str) -> None:
    import csv

    with export.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    for row in rows:
        if row[0] == inventory:
            row[bc.HEADER.index("description_vi")] = text
    bc.write_export(export, rows)


def _wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_an_export_change_is_one_activity_in_one_stream_from_every_node_sharing_state(shared: Any) -> None:
    bases = [node.url for node in shared.nodes] + [shared.url]
    total = _stream(shared.nodes[0].url)["totalItems"]
    assert total >= 3 and all(_stream(base)["totalItems"] == total for base in bases)
    _edit_description(shared.export, "KH-CL-0001", "Mô tả mới")
    manifest = "/iiif/manifests/KH-CL-0001"
    for node in shared.nodes:  # every node has rebuilt from the new export
        _wait_for(lambda node=node: "Mô tả mới" in bc.get(node.url + manifest)[1].decode())
    time.sleep(1.5)  # a few more check intervals: a recording reader would have appended by now
    streams = [_stream(base) for base in bases]
    assert all(stream == streams[0] for stream in streams)
    assert streams[0]["totalItems"] == total + 1
    newest = _last_page(shared.url)[-1]
    assert newest["type"] == "Update" and newest["object"]["id"].endswith(manifest)
    assert all(_last_page(base) == _last_page(shared.url) for base in bases)


def test_readers_on_machines_sharing_no_state_record_nothing_and_the_balancer_asks_the_writer(
    tmp_path: Path,
) -> None:
    with bc.cluster(nodes=2, workers=1, folder=tmp_path / "c", shared_state=False) as running:
        writer, reader = running.nodes
        total = _stream(writer.url)["totalItems"]
        _edit_description(running.export, "KH-CL-0002", "Đã sửa")
        manifest = "/iiif/manifests/KH-CL-0002"
        for node in running.nodes:
            _wait_for(lambda node=node: "Đã sửa" in bc.get(node.url + manifest)[1].decode())
        time.sleep(1.0)
        assert not (running.folder / reader.name / "state" / "changes.sqlite").exists()  # a reader never records
        status, body = bc.get(reader.url + "/iiif/activity/all-changes")
        assert status == 404 and body.strip().count(b"\n") == 0  # no history of its own to tell
        streams = [_stream(running.url) for _ in range(4)]  # round-robin would alternate; the ACL does not
        assert all(stream == _stream(writer.url) for stream in streams)
        assert streams[0]["totalItems"] == total + 1
        assert _last_page(running.url)[-1]["object"]["id"].endswith(manifest)


def test_the_test_command_installs_haproxy() -> None:
    """CI (.ci/run runs the README's command) must run this module, not skip it."""
    command = (REPO / "README.md").read_text().split("**Install the test dependencies and pass the tests:**")[1]
    command = command.split("```sh\n")[1].split("\n```")[0]
    assert command.count("haproxy") == 3  # checked, installed, installed after apt-get update
