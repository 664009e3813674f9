"""Replay the recorded Mirador session (``mirador.json``) by many visitors against a small cluster.

The cluster is ``bench/cluster/cluster.py``'s: its own Redis, N ``iiif-server serve`` nodes, HAProxy in
front, masters in a shared folder or (``--s3``/``--s3-local``) in a bucket. Its collection: K synthetic
photographs of the recorded image size (``bench/synth_images.py``, made once into
``bench/images/session-WxH/``) and K records of as many pages as the session has canvases (record *i*
shows images *i*, *i*+1, …, wrapping), so every image is the first page of one record.

Visitors choose a record by Zipf popularity: the record of rank *r* with weight 1/r^s (s = 1 by
default): a few treasures get most visits, as on a museum's site, and the long tail is visited once or
never. Each visitor is a browser with an empty cache that replays the recorded requests in their order
on one keep-alive connection, waiting until each request's recorded time divided by ``--speed``
(compressed time; 0: no waiting). ``--concurrency`` visitors are in the site at once. Every visitor of
one record sends exactly the recorded URLs: they all zoom at the same detail, so the hit ratios are an
upper bound of what visitors exploring different details would give.

Two passes by default: ``cold`` (empty caches, Redis empty) and ``warm`` (the same visitors again, the
caches as the first pass left them). Around each pass, every node's /metrics is read; per pass the
report gives what answered the image requests (``iiif_image_responses_total{tier}``: pass-through,
memory, shared = Redis, render, 304), renders, requests and bytes per visitor, requests/s, client-side
p50/p95 latency (through HAProxy), and on a bucket the store's GETs and bytes per visitor::

    .venv/bin/python bench/session/replay.py [--images 40] [--visitors 200] [--concurrency 12] [--zipf 1.0]
        [--nodes 2] [--workers 2] [--speed 20] [--s3-local | --s3 http://host:8333/bucket] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import json
import os
import queue
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "cluster"))
sys.path.insert(0, str(HERE))

import cluster as bc  # noqa: E402  (bench/cluster/cluster.py)
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from record import OUT as SESSION  # noqa: E402
from record import image_name, images_folder, make_photos  # noqa: E402

TIERS = ("pass-through", "memory", "shared", "render", "304")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True)
class Session:
    """The recording: the image size it was made on, its canvases, and (time offset, path template)."""

    width: int
    height: int
    canvases: int
    viewer: str
    requests: tuple[tuple[float, str], ...]

    @classmethod
    def load(cls, path: Path = SESSION) -> Session:
        data = json.loads(path.read_text(encoding="utf-8"))
        viewer = f"{data['viewer']['name']} {data['viewer']['version']}"
        requests = tuple((float(r["t"]), str(r["path"])) for r in data["requests"])
        return cls(data["image"]["width"], data["image"]["height"], int(data["canvases"]), viewer, requests)

    def for_record(self, inventory_no: str, identifiers: Sequence[str]) -> list[tuple[float, str]]:
        """The requests with the record's manifest and its pages' identifiers in place of the placeholders."""
        out = []
        for t, path in self.requests:
            if path == "{manifest}":
                path = f"/iiif/manifests/{quote(inventory_no, safe='')}"
            for n, identifier in enumerate(identifiers, start=1):
                path = path.replace(f"{{canvas{n}}}", quote(identifier, safe=""))
            out.append((t, path))
        return out


def inventory_no(n: int) -> str:
    return f"KH-SS-{n:04d}"


def pages(n: int, count: int, canvases: int) -> list[str]:
    """Record ``n``'s images (1-based): images n, n+1, … wrapping round the ``count`` images."""
    return [image_name((n - 1 + c) % count + 1) for c in range(canvases)]


def write_collection(path: Path, count: int, canvases: int) -> Path:
    rows = [
        [inventory_no(n), f"Hiện vật {n}", f"Object {n}", "hiện vật", "", "", "", "", "", "Kho", "", "", "public",
         bc.RIGHTS, "", "", ";".join(pages(n, count, canvases))]
        for n in range(1, count + 1)
    ]  # fmt: skip
    return bc.write_export(path, rows)


def zipf_choices(visitors: int, records: int, s: float, seed: int) -> list[int]:
    """Each visitor's record (1-based rank): weight 1/rank^s."""
    weights = [1 / rank**s for rank in range(1, records + 1)]
    return random.Random(seed).choices(range(1, records + 1), weights=weights, k=visitors)


@dataclass
class Outcome:
    """What the visitors saw of one pass, from the client side."""

    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    bytes: int = 0
    image_requests: int = 0
    image_urls: set[str] = field(default_factory=set)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str, status: str, latency: float, size: int) -> None:
        image = "/iiif/" in path and not path.endswith("/info.json") and not path.startswith("/iiif/manifests/")
        with self.lock:
            self.statuses[status] += 1
            self.latencies.append(latency)
            self.bytes += size
            if image:
                self.image_requests += 1
                self.image_urls.add(path)


def _visit(base: str, requests: list[tuple[float, str]], speed: float, outcome: Outcome) -> None:
    """One visitor: the requests in order on one keep-alive connection, in compressed time."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    start = time.monotonic()
    try:
        for t, path in requests:
            if speed > 0:
                delay = start + t / speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            began = time.perf_counter()
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read()
                status, size = str(response.status), len(body)
            except (OSError, http.client.HTTPException) as error:
                connection.close()  # a new connection for the next request
                status, size = type(error).__name__, 0
            outcome.add(path, status, time.perf_counter() - began, size)
    finally:
        connection.close()


def replay_pass(base: str, visits: list[list[tuple[float, str]]], concurrency: int, speed: float) -> Outcome:
    """``visits`` (each a visitor's request list), ``concurrency`` visitors at a time."""
    outcome = Outcome()
    waiting: queue.Queue[list[tuple[float, str]]] = queue.Queue()
    for visit in visits:
        waiting.put(visit)

    def worker() -> None:
        while True:
            try:
                visit = waiting.get_nowait()
            except queue.Empty:
                return
            _visit(base, visit, speed, outcome)

    began = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outcome.seconds = time.monotonic() - began
    return outcome


def scrape(urls: Sequence[str]) -> Samples:
    """Every sample of every node's /metrics, summed over the nodes (each sums its own workers)."""
    total: Samples = {}
    for url in urls:
        _, body = bc.get(url + "/metrics")
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                total[key] = total.get(key, 0.0) + sample.value
    return total


def _sum(samples: Samples, name: str, **labels: str) -> float:
    """A counter's value, over every label set that has ``labels``."""
    wanted = set(labels.items())
    return sum(value for (sample, have), value in samples.items() if sample == name and wanted <= set(have))


def summarise(before: Samples, after: Samples, outcome: Outcome, visitors: int, store: bool) -> dict[str, Any]:
    """One pass's figures: the nodes' counters (after - before) and the client's own."""

    def delta(name: str, **labels: str) -> float:
        return _sum(after, name, **labels) - _sum(before, name, **labels)

    tiers = {tier: int(delta("iiif_image_responses_total", tier=tier)) for tier in TIERS}
    answered = sum(tiers.values())
    # What the caches were asked: every answer but a file's stored tile (copied, never cached) and a 304;
    # from a bucket a stored tile is cached too, so its pass-through answers were misses.
    looked_up = tiers["memory"] + tiers["shared"] + tiers["render"] + (tiers["pass-through"] if store else 0)
    quantiles = statistics.quantiles(outcome.latencies, n=100) if len(outcome.latencies) > 1 else [0.0] * 99
    requests = sum(outcome.statuses.values())
    figures: dict[str, Any] = {
        "visitors": visitors,
        "requests": requests,
        "image_requests": outcome.image_requests,
        "distinct_image_urls": len(outcome.image_urls),
        "statuses": dict(outcome.statuses),
        "tiers": tiers,
        "tier_shares": {tier: (count / answered if answered else 0.0) for tier, count in tiers.items()},
        "hit_ratio": (tiers["memory"] + tiers["shared"]) / looked_up if looked_up else 0.0,
        "cache_hits": {t: int(delta("iiif_cache_hits_total", tier=t)) for t in ("memory", "shared")},
        "cache_misses": {t: int(delta("iiif_cache_misses_total", tier=t)) for t in ("memory", "shared")},
        "renders": int(delta("iiif_renders_total")),
        "renders_per_visitor": delta("iiif_renders_total") / visitors,
        "requests_per_visitor": requests / visitors,
        "kb_per_visitor": outcome.bytes / 1024 / visitors,
        "requests_per_second": requests / outcome.seconds if outcome.seconds else 0.0,
        "seconds": outcome.seconds,
        "p50_ms": quantiles[49] * 1000,
        "p95_ms": quantiles[94] * 1000,
    }
    if store:
        figures["store_gets_per_visitor"] = delta("iiif_store_requests_total", kind="get") / visitors
        figures["store_heads_per_visitor"] = delta("iiif_store_requests_total", kind="head") / visitors
        figures["store_requests"] = {
            dict(labels)["kind"]: int(value - before.get((name, labels), 0.0))
            for (name, labels), value in after.items()
            if name == "iiif_store_requests_total"
        }
        figures["store_mb_per_visitor"] = delta("iiif_store_bytes_total") / 1e6 / visitors
    return figures


@contextlib.contextmanager
def _bucket(s3: str | None, s3_local: bool, volumes: int, head_seconds: float) -> Iterator[bc.Bucket | None]:
    """The bucket the nodes read from: a given endpoint/bucket, a private SeaweedFS, or none (a folder)."""
    if s3:
        yield dataclasses.replace(bc.Bucket.from_url(s3, prefix="session/"), head_seconds=head_seconds)
    elif s3_local:
        sys.path.insert(0, str(REPO))
        from tests.s3_store import ACCESS_KEY, SECRET_KEY, seaweedfs

        with seaweedfs(volumes=volumes) as store:
            yield bc.Bucket(
                store.endpoint_url, store.bucket, ACCESS_KEY, SECRET_KEY, prefix="session/", head_seconds=head_seconds
            )
    else:
        yield None


def run(
    images: int = 40,
    visitors: int = 200,
    concurrency: int = 12,
    zipf: float = 1.0,
    nodes: int = 2,
    workers: int = 2,
    speed: float = 20.0,
    passes: Sequence[str] = ("cold", "warm"),
    seed: int = 14,
    session_path: Path = SESSION,
    image_root: Path | None = None,
    s3: str | None = None,
    s3_local: bool = False,
    head_seconds: float = 60.0,
) -> dict[str, Any]:
    """Make (or reuse) the images, start the cluster, replay each pass; the figures per pass.

    ``image_root``: a folder already holding ``photo-NN.tif`` of the session's size (the smoke test's),
    else photographs are made once into ``bench/images/session-WxH/``.
    """
    session = Session.load(session_path)
    if image_root is None:
        image_root = images_folder(session.width, session.height)
        make_photos(image_root, images, session.width, session.height)
    choices = zipf_choices(visitors, images, zipf, seed)
    visits = [session.for_record(inventory_no(n), pages(n, images, session.canvases)) for n in choices]
    volumes = 16 + images * 30 // 64  # SeaweedFS: 64-MB volumes, room for the masters (~24 MB each)
    bucket_of = _bucket(s3, s3_local, volumes, head_seconds)
    with tempfile.TemporaryDirectory(prefix="iiif-session-") as temp, bucket_of as bucket:
        folder = Path(temp)
        export = write_collection(folder / "export.csv", images, session.canvases)
        root = image_root
        if bucket is not None:  # only this run's images go up, under the run's own prefix
            upload = folder / "upload"
            upload.mkdir()
            for n in range(1, images + 1):
                (upload / image_name(n)).symlink_to(image_root / image_name(n))
            bucket.upload(upload)
            shutil.rmtree(upload)
            root = folder / "no-images-here"
        with bc.cluster(nodes, workers, folder=folder / "c", images=root, export=export, bucket=bucket) as running:
            urls = [node.url for node in running.nodes]
            result: dict[str, Any] = {
                "setup": {
                    "viewer": session.viewer, "image": f"{session.width}x{session.height}",
                    "session_requests": len(session.requests), "images": images, "records": images,
                    "canvases": session.canvases, "visitors": visitors, "distinct_records": len(set(choices)),
                    "top_record_share": Counter(choices).most_common(1)[0][1] / visitors, "zipf_s": zipf,
                    "concurrency": concurrency, "nodes": nodes, "workers": workers, "speed": speed,
                    "store": "bucket" if bucket is not None else "folder", "cpus": os.cpu_count(),
                    "head_seconds": head_seconds if bucket is not None else None,
                },
                "passes": {},
            }  # fmt: skip
            for name in passes:
                before = scrape(urls)
                outcome = replay_pass(running.url, visits, concurrency, speed)
                time.sleep(1.5)  # each worker adds its counts to /metrics within a second (metrics.Tally)
                result["passes"][name] = summarise(before, scrape(urls), outcome, visitors, bucket is not None)
    return result


def table(result: dict[str, Any]) -> str:
    """The passes side by side, as docs/performance.md shows them."""
    passes = result["passes"]
    rows: list[tuple[str, ...]] = []

    def row(label: str, cell: Any) -> None:
        rows.append((label, *(cell(p) for p in passes.values())))

    for tier in TIERS:
        row(f"image answers: {tier}", lambda p, t=tier: f"{p['tier_shares'][t] * 100:.1f} % ({p['tiers'][t]})")
    row("cache hit ratio", lambda p: f"{p['hit_ratio'] * 100:.1f} %")
    row("renders per visitor", lambda p: f"{p['renders_per_visitor']:.2f}")
    row("requests per visitor", lambda p: f"{p['requests_per_visitor']:.0f}")
    row("KB per visitor", lambda p: f"{p['kb_per_visitor']:.0f}")
    if "store_gets_per_visitor" in next(iter(passes.values())):
        row("store GETs per visitor", lambda p: f"{p['store_gets_per_visitor']:.1f}")
        row("store HEADs per visitor", lambda p: f"{p['store_heads_per_visitor']:.1f}")
        row("MB read from the store per visitor", lambda p: f"{p['store_mb_per_visitor']:.2f}")
    row("requests/s", lambda p: f"{p['requests_per_second']:.0f}")
    row("p50 / p95 latency", lambda p: f"{p['p50_ms']:.1f} / {p['p95_ms']:.1f} ms")
    row("answers", lambda p: ", ".join(f"{k}: {v}" for k, v in sorted(p["statuses"].items())))
    header = ("", *passes)
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * len(passes) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=40, help="K: synthetic images (and records)")
    parser.add_argument("--visitors", type=int, default=200, help="V: visitors per pass")
    parser.add_argument("--concurrency", type=int, default=12, help="visitors in the site at once")
    parser.add_argument("--zipf", type=float, default=1.0, help="s: record of rank r chosen with weight 1/r^s")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per node")
    parser.add_argument("--speed", type=float, default=20.0, help="time compression of the recording; 0: none")
    parser.add_argument("--passes", default="cold,warm", help="names of the passes, each the same visitors")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--session", type=Path, default=SESSION)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--s3", metavar="ENDPOINT/BUCKET", help="masters uploaded there (AWS_ACCESS_KEY_ID, ...)")
    group.add_argument("--s3-local", action="store_true", help="masters in a private SeaweedFS (tests/s3_store.py)")
    parser.add_argument("--head-seconds", type=float, default=60.0, help="[s3] head_seconds of the nodes")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--image-root", type=Path, help="a folder already holding photo-01.tif … of the session's size (else made)"
    )
    args = parser.parse_args()
    result = run(
        args.images, args.visitors, args.concurrency, args.zipf, args.nodes, args.workers, args.speed,
        args.passes.split(","), args.seed, args.session, args.image_root, args.s3, args.s3_local, args.head_seconds,
    )  # fmt: skip
    setup = result["setup"]
    print(
        f"{setup['viewer']} session ({setup['session_requests']} requests) on {setup['image']}; K={setup['images']} "
        f"records of {setup['canvases']} pages, V={setup['visitors']} (Zipf s={setup['zipf_s']}: "
        f"{setup['distinct_records']} records visited, the first {setup['top_record_share']:.0%} of visits), "
        f"concurrency {setup['concurrency']}, {setup['nodes']} nodes x {setup['workers']} workers, masters in a "
        f"{setup['store']}, speed x{setup['speed']:g}, {setup['cpus']} CPUs"
    )
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
