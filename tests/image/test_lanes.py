"""The heavy-render lane: slots, a bounded queue, 503 with Retry-After, and who never enters it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from prometheus_client import REGISTRY

from iiif_server import create_app
from iiif_server.config import Settings
from iiif_server.errors import LaneFull, RenderTimeout
from iiif_server.image.lanes import Lane
from iiif_server.image.model import ApiVersion, ImageRequest
from iiif_server.image.parse import parse_path
from iiif_server.image.routes import error_headers, status_for
from iiif_server.image.service import ImageService
from tests.conftest import decode

HEAVY = "/iiif/3/big.tif/full/3999,/0/default.png"  # 12 MP decoded + 12 MP produced: over 4 MP
TILE = "/iiif/3/big.tif/256,256,256,256/256,/0/default.jpg"


@contextmanager
def occupied(lane: Lane) -> Iterator[threading.Event]:
    """Every slot of ``lane`` held by a thread until the block ends."""
    release = threading.Event()
    holders = [threading.Thread(target=lane.run, args=(release.wait,)) for _ in range(lane.concurrency)]
    for holder in holders:
        holder.start()
    _until(lambda: lane.stats().running == lane.concurrency)
    try:
        yield release
    finally:
        release.set()
        for holder in holders:
            holder.join(10)


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_a_free_slot_is_taken_at_once() -> None:
    lane = Lane(concurrency=2, queue_length=0, max_wait=0)
    assert lane.run(lambda: 42) == 42
    stats = lane.stats()
    assert (stats.running, stats.queued, stats.admitted, stats.rejected_full) == (0, 0, 1, 0)
    assert stats.wait_seconds_max < 0.05


def test_queue_full_is_lane_full_with_retry_after_mapped_to_503() -> None:
    lane = Lane(concurrency=1, queue_length=0, max_wait=5)
    with occupied(lane), pytest.raises(LaneFull) as caught:
        lane.run(lambda: "never")
    error = caught.value
    assert status_for(error) == 503
    assert error_headers(error) == [("Retry-After", str(error.retry_after))] and error.retry_after >= 1
    assert "queue for large renders is full" in str(error)
    assert lane.stats().rejected_full == 1 and lane.stats().running == 0


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_queued_call_runs_when_a_slot_frees_and_its_wait_is_recorded() -> None:
    lane = Lane(concurrency=1, queue_length=1, max_wait=10)
    results: list[str] = []
    full, waits = _metric("iiif_lane_rejections_total", reason="full"), _metric("iiif_lane_wait_seconds_count")
    with occupied(lane) as release:
        waiter = threading.Thread(target=lambda: results.append(lane.run(lambda: "ran")))
        waiter.start()
        _until(lambda: lane.stats().queued == 1)
        assert _metric("iiif_lane_queued") >= 1  # what /metrics shows operators
        with pytest.raises(LaneFull):  # one waits already: no room for a second
            lane.run(lambda: "never")
        time.sleep(0.2)
        release.set()
        waiter.join(10)
    stats = lane.stats()
    assert results == ["ran"]
    assert (stats.admitted, stats.rejected_full, stats.rejected_wait, stats.queued) == (2, 1, 0, 0)
    assert _metric("iiif_lane_rejections_total", reason="full") == full + 1
    assert _metric("iiif_lane_wait_seconds_count") == waits + 1
    assert 0.2 <= stats.wait_seconds_max <= stats.wait_seconds_total


def test_a_waiter_gives_up_after_max_wait_and_the_slot_is_not_lost() -> None:
    lane = Lane(concurrency=1, queue_length=1, max_wait=0.2)
    with occupied(lane):
        started = time.monotonic()
        with pytest.raises(LaneFull, match=r"within 0\.2 s"):
            lane.run(lambda: "never")
        assert 0.2 <= time.monotonic() - started < 5
    assert lane.run(lambda: "next") == "next"
    stats = lane.stats()
    assert (stats.rejected_wait, stats.running, stats.queued) == (1, 0, 0)
    assert stats.wait_seconds_max >= 0.2


def test_a_slot_is_released_when_the_work_fails_or_times_out() -> None:
    lane = Lane(concurrency=1, queue_length=0, max_wait=0)

    def timed_out() -> bytes:
        raise RenderTimeout("rendering took longer than 1 s", retry_after=1)

    for failing in (timed_out, lambda: 1 / 0):
        with pytest.raises((RenderTimeout, ZeroDivisionError)):
            lane.run(failing)
        assert lane.stats().running == 0
    assert lane.run(lambda: "free") == "free"


def test_invalid_lane_is_refused() -> None:
    with pytest.raises(ValueError):
        Lane(concurrency=0, queue_length=1, max_wait=1)


@pytest.fixture
def lanes_settings(settings: Settings) -> Settings:
    """One heavy render at a time, none waiting; no disk tier, so nothing is cached across tests."""
    return settings.replace(lanes={"heavy_queue": 0}, cache={"disk_max_mb": 0})


def _request(path: str) -> ImageRequest:
    request = parse_path(ApiVersion.V3, path.removeprefix("/iiif/3/"))
    assert isinstance(request, ImageRequest)
    return request


def test_classification_uses_the_plan(lanes_settings: Settings) -> None:
    service: ImageService = create_app(lanes_settings).extensions["iiif_server"]
    for path, heavy in ((HEAVY, True), (TILE, False), ("/iiif/3/big.tif/full/1000,/0/default.jpg", False)):
        assert service.heavy(service.prepare(_request(path))) is heavy, path
    off: ImageService = create_app(lanes_settings.replace(lanes={"heavy_pixels": 0})).extensions["iiif_server"]
    assert off.lane is None and not off.heavy(off.prepare(_request(HEAVY)))


def test_full_lane_answers_503_but_tiles_and_cache_hits_pass(lanes_settings: Settings) -> None:
    app = create_app(lanes_settings)
    client = app.test_client()
    lane = app.extensions["iiif_server"].lane
    with occupied(lane):
        busy = client.get(HEAVY)
        assert busy.status_code == 503
        assert busy.headers["Retry-After"].isdigit() and int(busy.headers["Retry-After"]) >= 1
        assert busy.headers["Cache-Control"] == "no-store"
        assert "server busy" in busy.get_data(as_text=True)
        tile = client.get(TILE)  # cheap: never waits for the lane
        assert tile.status_code == 200 and decode(tile.data).width == 256
    rendered = client.get(HEAVY)
    assert rendered.status_code == 200
    with occupied(lane):
        again = client.get(HEAVY)  # a cache hit never enters the lane
        assert again.status_code == 200 and again.data == rendered.data
    image = decode(rendered.data)
    assert (image.width, image.height) == (3999, 2999)
    assert lane.stats().admitted == 3  # two holders and the one render; the hit took no slot


def test_a_coalesced_waiter_holds_no_slot(lanes_settings: Settings) -> None:
    """Two identical heavy misses at once, lane of one slot and no queue: one renders, both get it."""
    service: ImageService = create_app(lanes_settings).extensions["iiif_server"]
    lane = service.lane
    assert lane is not None
    render, started, release = service.renderer.render, threading.Event(), threading.Event()

    def slow_render(*args):  # type: ignore[no-untyped-def]
        started.set()
        release.wait(10)
        return render(*args)

    service.renderer.render = slow_render  # type: ignore[method-assign]
    prepared = service.prepare(_request(HEAVY))
    bodies: list[bytes] = []
    threads = [threading.Thread(target=lambda: bodies.append(service.render(prepared))) for _ in range(2)]
    threads[0].start()
    assert started.wait(10)
    threads[1].start()
    time.sleep(0.2)  # the second is waiting on the first's flight, not on the lane
    release.set()
    for thread in threads:
        thread.join(30)
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    assert (lane.stats().admitted, lane.stats().rejected_full) == (1, 0)
