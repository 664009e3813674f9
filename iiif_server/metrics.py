"""Prometheus metrics (``prometheus_client``) and the per-request note of which tier answered.

Knows no web framework: the WSGI edge (``observe.py``) times requests and serves the
exposition; the cache, Redis tier and renderer count what only they know. Under gunicorn,
``serving.serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a private folder before the workers
fork, so every worker writes its values there and any worker's ``/metrics`` sums them all
(prometheus_client's multiprocess mode). Without it (one process) the values live in memory.

The tier note is a mutable holder in a context variable: the edge sets a fresh one per
request, the service and the cache write into it, the edge reads it for the access log.
Being a holder, a value written in a thread the request handed work to is seen too.
"""

from __future__ import annotations

import atexit
import threading
import time
from bisect import bisect_left
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: Where an image (or info.json) came from; ``None`` when nothing answered it (an error).
PASS_THROUGH, MEMORY, SHARED, RENDER, NOT_MODIFIED = "pass-through", "memory", "shared", "render", "304"

#: Seconds: tiles answer in ~1 ms, renders in tens of ms to seconds, timeouts at [server] render_timeout.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Histogram(
    "iiif_http_request_duration_seconds",
    "Time to produce a response, by endpoint kind and status; _count is the number of requests",
    ["kind", "status"],
    buckets=BUCKETS,
)
CACHE_HITS = Counter("iiif_cache_hits", "Cache lookups answered, by tier (memory, shared)", ["tier"])
CACHE_MISSES = Counter("iiif_cache_misses", "Cache lookups not answered, by tier (memory, shared)", ["tier"])
IMAGE_RESPONSES = Counter(
    "iiif_image_responses",
    "Image requests by what answered them: pass-through (stored tile), memory, shared, render, 304",
    ["tier"],
)
RENDER_TIMEOUTS = Counter("iiif_render_timeouts", "Renders stopped at [server] render_timeout (answered 503)")
RENDERS = Counter("iiif_renders", "Images rendered by libvips (requests that waited for another's render not counted)")
RENDERS_ABANDONED = Counter(
    "iiif_renders_abandoned", "Renders stopped because every client waiting for them had disconnected"
)
LANE_REJECTIONS = Counter(
    "iiif_lane_rejections",
    "Large renders answered 503 by the admission lane: queue full on arrival, or no slot within [lanes] heavy_wait",
    ["reason"],
)
LANE_FULL, LANE_WAIT_EXPIRED = LANE_REJECTIONS.labels("full"), LANE_REJECTIONS.labels("wait")
LANE_WAIT = Histogram(
    "iiif_lane_wait_seconds", "Time large renders waited for a slot in the admission lane", buckets=BUCKETS
)
LANE_QUEUED = Gauge(
    "iiif_lane_queued", "Large renders waiting for a slot, summed over live workers", multiprocess_mode="livesum"
)
ADMIN_AUTH_FAILURES = Counter(
    "iiif_admin_auth_failures",
    "Admin requests refused: a wrong bearer token (wrong), or one from an address blocked for too many (throttled)",
    ["reason"],
)
ADMIN_WRONG_TOKEN, ADMIN_THROTTLED = ADMIN_AUTH_FAILURES.labels("wrong"), ADMIN_AUTH_FAILURES.labels("throttled")
AUDIT_RECORDS = Counter(
    "iiif_audit_records", "Full-resolution accesses to restricted images written to the audit log ([access] state_dir)"
)
AUDIT_DROPPED = Counter(
    "iiif_audit_dropped",
    "Audit records lost: the writer stayed behind (queue full) or the audit database could not be written at exit",
)
STORE_REQUESTS = Counter(
    "iiif_store_requests", "Requests to the object store of the masters ([images] source = s3), by kind", ["kind"]
)
STORE_BYTES = Counter("iiif_store_bytes", "Bytes of masters read from the object store (ranged GETs)")
REDIS_ERRORS = Counter("iiif_redis_errors", "Redis commands that failed (each is served as a cache miss)")

MEMORY_HIT, MEMORY_MISS = CACHE_HITS.labels(MEMORY), CACHE_MISSES.labels(MEMORY)
SHARED_HIT, SHARED_MISS = CACHE_HITS.labels(SHARED), CACHE_MISSES.labels(SHARED)


class Note:
    """What one request's handling learnt that its log line and metrics need."""

    __slots__ = ("tier",)

    def __init__(self) -> None:
        self.tier: str | None = None


_NOTE: ContextVar[Note | None] = ContextVar("iiif_server_note", default=None)


def begin() -> tuple[Note, object]:
    """A fresh note for the request starting now; pass the token to ``end``."""
    note = Note()
    return note, _NOTE.set(note)


def end(token: object) -> None:
    _NOTE.reset(token)  # type: ignore[arg-type]


def note_tier(tier: str | None) -> None:
    """Record what answered the current request; a no-op outside one (CLI builds, tests)."""
    note = _NOTE.get()
    if note is not None:
        note.tier = tier


def noted_tier() -> str | None:
    """What the current request's note says answered it so far (None outside a request)."""
    note = _NOTE.get()
    return note.tier if note is not None else None


def kind_of(path: str, tier: str | None) -> str:
    """The endpoint kind of a request path, as the latency histogram labels it.

    ``tile`` is an image answered without rendering (stored tile, cache, 304): what a viewer's
    tiles are; ``render`` an image this request had rendered (or waited for).
    """
    if path.startswith(("/iiif/3/", "/iiif/2/")):
        if path.endswith("/info.json"):
            return "info"
        return "render" if tier == RENDER else "tile"
    if path.startswith(("/iiif/manifests/", "/iiif/collections/", "/iiif/activity/")):
        return "presentation"
    if path in ("/", "/search", "/status") or path.startswith(("/viewer", "/static/", "/items/", "/browse/")):
        return "page"
    return "other"


class Tally:
    """This worker's request durations and image answers, added to ``REQUESTS`` and
    ``IMAGE_RESPONSES`` at most ``interval`` seconds late, by a daemon thread.

    In multiprocess mode one histogram observation and one counter increment are three locked
    writes to memory-mapped files (~7 µs, measured): more than a replayed tile's own work. Here a
    request costs a lock and two list updates; the flush makes the same writes once per label
    set and bucket, whatever the traffic. It adds counts to the histogram's own bucket and sum
    values (``_buckets``, ``_sum``: prometheus_client has no public call to add n observations;
    tests/test_observability.py checks the result against plain ``observe`` calls). ``/metrics``
    flushes its own worker first, and every worker flushes at exit.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._durations: dict[tuple[str, int], list[float]] = {}  # counts per bucket, then the sum
        self._images: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        atexit.register(self.flush)

    def add(self, kind: str, status: int, duration: float, image_tier: str | None) -> None:
        with self._lock:
            row = self._durations.get((kind, status))
            if row is None:
                row = self._durations[(kind, status)] = [0.0] * (len(BUCKETS) + 2)
            row[bisect_left(BUCKETS, duration)] += 1  # le is inclusive, as in Histogram.observe
            row[-1] += duration
            if image_tier is not None:
                self._images[image_tier] = self._images.get(image_tier, 0) + 1
            if self._thread is None:  # started in the worker, after the fork, by its first request
                self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)
                self._thread.start()

    def flush(self) -> None:
        with self._lock:
            durations, self._durations = self._durations, {}
            images, self._images = self._images, {}
        for (kind, status), row in durations.items():
            histogram: Any = REQUESTS.labels(kind, str(status))
            for bucket, count in zip(histogram._buckets, row[:-1], strict=True):
                if count:
                    bucket.inc(count)
            histogram._sum.inc(row[-1])
        for tier, count in images.items():
            IMAGE_RESPONSES.labels(tier).inc(count)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()


def exposition(directory: Path | None) -> tuple[bytes, str]:
    """The text format of every metric: summed over the workers' files in ``directory``, if given."""
    if directory is None:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    return generate_latest(registry), CONTENT_TYPE_LATEST
