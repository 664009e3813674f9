"""Catalogue search at scale: the FTS5 index (iiif_server/web/search.py) over a synthetic export, in-process.

One command (see bench/README.md)::

    .venv/bin/python bench/search.py [--records 10000] [--repeat 300] [--threads 4]

It synthesises an export in the museums' format (``manifests_scale.synthesise``: Vietnamese titles with
diacritics, object types, sites, periods, ranks, materials; descriptions lengthened to a few hundred
characters), parses it with the server's own parser, gives the materials and types their English in a
vocabulary, then:

1. builds the index (best of 3) and reports the time and the process's RSS growth;
2. runs a mix of queries (single words, two words typed without accents, inventory numbers, a prefix,
   filters only, a query and a filter, a query finding nothing) ``--repeat`` times each in one thread and
   reports p50/p95/p99 per kind, each ``SearchIndex.search`` call timed whole (facets and snippets included);
3. runs the same mix in ``--threads`` threads at once, on per-thread connections (the server's way)
   and on one connection behind a lock, and reports queries/s and p95 for each;
4. searches in 4 threads while the index of a changed snapshot is rebuilt through ``CatalogueSearch``,
   and reports the searches' times during the rebuild (the old index answers meanwhile).

Prints a table and writes everything to ``bench/results/search-<timestamp>.json``. With ``--http``,
instead: the ``/search`` page of a real server on the same export (``over_http``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sqlite3
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode
from urllib.request import urlopen

import host
from manifests_scale import COLUMNS, KINDS, SITES, synthesise

from iiif_server.check import free_port, running_server
from iiif_server.presentation.catalogue import Snapshot
from iiif_server.presentation.records import ColumnMap, Record, parse_records
from iiif_server.presentation.vocabulary import Vocabulary
from iiif_server.web.search import CatalogueSearch, Query, SearchIndex
from iiif_server.web.urls import FACETS, SEARCH

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
FILLER = (
    "Hiện vật được phát hiện trong đợt khảo sát năm {year} và chuyển về kho bảo quản của bảo tàng.",
    "Bề mặt có dấu vết mài mòn, một số chỗ sứt mẻ nhỏ; đã được tu bổ theo quy trình bảo quản dự phòng.",
    "Hoa văn trang trí gồm các vành đồng tâm, họa tiết hình học và chim lạc cách điệu.",
    "Tư liệu tham khảo: báo cáo khai quật lưu tại phòng Nghiệp vụ, hồ sơ hiện vật số {number}.",
    "Niên đại xác định dựa trên so sánh loại hình với các hiện vật cùng loại ở miền Trung Việt Nam.",
)
FILLER_EN = (
    "Found during the {year} survey and moved to the museum's storehouse.",
    "Worn surface with small chips; conserved under the preventive conservation procedure.",
    "Decoration of concentric bands, geometric motifs and stylised Lạc birds.",
)


def export_rows(count: int, seed: int = 1) -> list[dict[str, str]]:
    """The synthetic export's rows, every record public, descriptions lengthened."""
    rows, _ = synthesise(count, 1, seed)
    rng = random.Random(seed)
    for number, row in enumerate(rows, 1):
        row["access"] = "public"
        year = rng.randint(1920, 2020)
        vi = rng.sample(FILLER, 3)
        en = rng.sample(FILLER_EN, 2)
        row["description_vi"] += " " + " ".join(s.format(year=year, number=number) for s in vi)
        row["description_en"] += " " + " ".join(s.format(year=year, number=number) for s in en)
    return rows


def records(count: int, seed: int = 1) -> list[Record]:
    """The synthetic export's public records, parsed by the server's own parser."""
    parsed = parse_records(enumerate(export_rows(count, seed), 2), ColumnMap())
    assert not parsed.problems, parsed.problems[:3]
    return parsed.records


def over_http(count: int, mix: dict[str, list[Query]], repeat: int, work: Path) -> dict[str, Any]:
    """The same mix as ``/search`` pages of a real ``iiif-server serve`` (1 worker) on the same export.

    Every record names one shared small image, so the catalogue builds quickly; the first request
    (the home page) waits for the catalogue and the index. Times are whole HTTP answers (HTML rendered).
    """
    import pyvips  # only here: the in-process part needs no libvips

    work.mkdir(parents=True, exist_ok=True)
    (work / "images").mkdir(exist_ok=True)
    pyvips.Image.black(400, 300).jpegsave(str(work / "images" / "shared.jpg"))
    rows = export_rows(count)
    with (work / "export.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows({**row, "images": "shared.jpg"} for row in rows)
    env = {
        "IIIF_SERVER_IMAGES_ROOT": str(work / "images"),
        "IIIF_SERVER_MANIFESTS_SOURCE": str(work / "export.csv"),
        "IIIF_SERVER_MANIFESTS_STATE_DIR": str(work / "state"),
        "IIIF_SERVER_CACHE_DISK_DIR": str(work / "cache"),
        "IIIF_SERVER_SERVER_WORKERS": "1",
        "IIIF_SERVER_SERVER_ACCESS_LOG": "off",
    }
    names = {name: url for url, name in FACETS.items()}
    result: dict[str, Any] = {}
    start = time.perf_counter()
    with running_server(["serve"], free_port(), env=env, start_timeout=900) as base:
        result["first_answer_s"] = time.perf_counter() - start
        for kind, qs in mix.items():
            cycle = (qs * (repeat // len(qs) + 1))[:repeat]
            times = []
            for query in cycle:
                params = {"q": query.text, **{names[k]: v for k, v in query.filters.items()}}
                url = f"{base}{SEARCH}?{urlencode(params)}"
                begin = time.perf_counter()
                with urlopen(url, timeout=60) as answer:  # our own server, on 127.0.0.1
                    body = answer.read()
                times.append(time.perf_counter() - begin)
                assert answer.status == 200 and body
            result[kind] = percentiles(times)
    return result


def vocabulary() -> Vocabulary:
    terms = {("material", vi.casefold()): en for kind in KINDS for vi, en in kind.materials}
    terms |= {("object_type", k.value.casefold()): k.folder for k in KINDS}  # some English-ish word per type
    return Vocabulary(terms)


def queries(published: list[Record], seed: int = 2) -> dict[str, list[Query]]:
    """The mix, by kind: each kind a list of distinct-ish queries drawn from the data."""
    rng = random.Random(seed)
    inventories = [r.inventory_number for r in published]
    words = ["trống", "tháp", "sắc phong", "gốm", "lụa", "đình", "bronze", "sandstone", "khảo sát", "chim lạc"]
    sites = sorted(SITES)
    return {
        "one word": [Query(rng.choice(words).split()[0]) for _ in range(50)],
        "two words, no accents": [
            Query(t) for t in ("trong dong", "thap ba", "sac phong", "binh gom", "tranh lua", "dinh lang")
        ],
        "inventory number": [Query(rng.choice(inventories)) for _ in range(50)]
        + [Query(rng.choice(inventories).lower().replace("-", " ")) for _ in range(50)],
        "prefix (typing)": [Query(t) for t in ("trong do", "tha", "sac ph", "khao s", "ch")],
        "filters only": [Query("", {"site": s}) for s in sites]
        + [Query("", {"object_type": k.value, "site": rng.choice(sites)}) for k in KINDS],
        "query + filter": [Query(rng.choice(words), {"site": rng.choice(sites)}) for _ in range(30)],
        "no hit": [Query(t) for t in ("xyzzy", "khong co gi", "KH-ZZ-99999", '"*:(NEAR -')],
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    at = lambda share: ordered[min(len(ordered) - 1, int(share * len(ordered)))]  # noqa: E731
    return {"n": len(ordered), "p50_ms": at(0.50) * 1e3, "p95_ms": at(0.95) * 1e3, "p99_ms": at(0.99) * 1e3}


def timed(search: Callable[[Query], object], mix: list[Query], cpu: list[float] | None = None) -> list[float]:
    """Wall time of each search; with ``cpu``, also the thread's CPU time (unaffected by other processes)."""
    times = []
    for query in mix:
        start, start_cpu = time.perf_counter(), time.thread_time()
        search(query)
        times.append(time.perf_counter() - start)
        if cpu is not None:
            cpu.append(time.thread_time() - start_cpu)
    return times


def rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class LockedIndex(SearchIndex):
    """The alternative measured: every thread on one connection, one search at a time."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _shared: ClassVar[dict[str, sqlite3.Connection]] = {}

    @contextmanager
    def _connection(self, built: Any) -> Iterator[sqlite3.Connection]:
        with self._lock:
            connection = self._shared.get(built.uri)
            if connection is None:
                connection = self._shared[built.uri] = sqlite3.connect(
                    built.uri, uri=True, isolation_level=None, check_same_thread=False
                )
            yield connection


def threaded(index: SearchIndex, mix: list[Query], threads: int) -> dict[str, float]:
    times: list[float] = []
    barrier = threading.Barrier(threads)

    def run(offset: int) -> None:
        barrier.wait()
        times.extend(timed(index.search, mix[offset:] + mix[:offset]))

    start = time.perf_counter()
    workers = [threading.Thread(target=run, args=(n * len(mix) // threads,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - start
    return {"threads": threads, "queries_per_s": len(times) / wall} | percentiles(times)


def during_rebuild(published: list[Record], voc: Vocabulary, mix: list[Query]) -> dict[str, float]:
    """Search in 4 threads while another snapshot's index is built; the searches' times meanwhile."""
    snapshots = [Snapshot(published=published, vocabulary=voc)]
    search = CatalogueSearch(lambda: snapshots[-1])
    search.index()
    stop = threading.Event()
    times: list[float] = []

    def run() -> None:
        while not stop.is_set():
            times.extend(timed(lambda q: search.index().search(q), mix[:20]))

    workers = [threading.Thread(target=run) for _ in range(4)]
    for worker in workers:
        worker.start()
    time.sleep(0.3)
    changed = [replace(r, title=replace(r.title, vi=r.title.vi + " (đã hiệu đính)")) for r in published]
    snapshots.append(Snapshot(published=changed, vocabulary=voc))
    before = len(times)
    start = time.perf_counter()
    while "(đã hiệu đính)" not in search.index().search(Query("", page_size=1)).hits[0].record.title.vi:
        time.sleep(0.001)
    rebuild = time.perf_counter() - start
    meanwhile = times[before:]
    stop.set()
    for worker in workers:
        worker.join()
    return {"rebuild_s": rebuild, "longest_ms": max(meanwhile) * 1e3} | percentiles(meanwhile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=200, help="queries per kind (cycling through its list)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--http", action="store_true", help="also time the /search page of a real server")
    parser.add_argument("--work", type=Path, default=BENCH / "images" / "search", help="the --http export and state")
    args = parser.parse_args(argv)
    if args.http:  # alone, first: the in-process part's threads would slow the server's build down
        published = records(args.records)
        http = over_http(args.records, queries(published), args.repeat // 4, args.work)
        print(f"/search over HTTP, 1 worker, {args.records} records; first answer after {http['first_answer_s']:.0f} s")
        for kind, row in http.items():
            if kind != "first_answer_s":
                print(
                    f"{kind:28} p50 {row['p50_ms']:7.2f} ms  p95 {row['p95_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms"
                )
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = RESULTS / f"search-http-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps({"host": host.describe(REPO, Path(sys.executable)), "http": http}, indent=2))
        print(f"written: {out.relative_to(REPO)}")
        return 0

    published, voc = records(args.records), vocabulary()
    index = SearchIndex()
    before = rss_mb()
    builds = []
    for _ in range(3):
        start = time.perf_counter()
        index.update(published, voc)
        builds.append(time.perf_counter() - start)
    grown = rss_mb() - before
    mix = queries(published)
    found = {kind: statistics.mean(index.search(q).total for q in qs) for kind, qs in mix.items()}
    for qs in mix.values():  # warm: every thread's connection, the caches of the first queries
        timed(index.search, qs)
    single = {}
    for kind, qs in mix.items():
        cycle = (qs * (args.repeat // len(qs) + 1))[: args.repeat]
        cpu: list[float] = []
        wall = percentiles(timed(index.search, cycle, cpu))
        cpu_ms = {f"cpu_{k}": v for k, v in percentiles(cpu).items() if k != "n"}
        single[kind] = wall | cpu_ms | {"mean_total": found[kind]}
    every = [q for qs in mix.values() for q in qs]
    cpu = []
    overall = percentiles(timed(index.search, every * 3, cpu))
    overall |= {f"cpu_{k}": v for k, v in percentiles(cpu).items() if k != "n"}
    locked = LockedIndex()
    locked.update(published, voc)
    rounds: dict[str, list[dict[str, float]]] = {}
    for _ in range(3):  # interleaved, so that other load on the machine falls on each alike; median round kept
        for name, runs, threads in (
            ("per-thread connections", index, args.threads),
            ("one connection + lock", locked, args.threads),
            ("per-thread connections, 1 thread", index, 1),
        ):
            rounds.setdefault(name, []).append(threaded(runs, every, threads))
    concurrency = {name: sorted(r, key=lambda row: row["queries_per_s"])[1] for name, r in rounds.items()}
    rebuild = during_rebuild(published, voc, every)

    print(f"{args.records} records; index build best of 3: {min(builds):.2f} s; RSS +{grown:.0f} MB (3 builds)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall times include waiting)")
    print(f"{'kind':24} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} | {'CPU p50':>7} {'p95':>6} {'p99':>6} {'hits':>6}")
    for kind, row in [*single.items(), ("all kinds", overall)]:
        print(
            f"{kind:24} {row['p50_ms']:7.2f} {row['p95_ms']:7.2f} {row['p99_ms']:7.2f} | {row['cpu_p50_ms']:7.2f} "
            f"{row['cpu_p95_ms']:6.2f} {row['cpu_p99_ms']:6.2f} {row.get('mean_total', float('nan')):6.0f}"
        )
    for name, row in concurrency.items():
        print(f"{name:34} {row['threads']} threads: {row['queries_per_s']:7.0f} q/s, p95 {row['p95_ms']:.2f} ms")
    print(
        f"rebuild through CatalogueSearch: {rebuild['rebuild_s']:.2f} s; {rebuild['n']} searches meanwhile: "
        f"p50 {rebuild['p50_ms']:.1f} ms, p95 {rebuild['p95_ms']:.1f} ms, longest {rebuild['longest_ms']:.1f} ms"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"search-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    report = {
        "host": host.describe(REPO, Path(sys.executable)),
        "sqlite": sqlite3.sqlite_version,
        "load_average": os.getloadavg(),
        "records": args.records,
        "build_s": builds,
        "rss_growth_mb": grown,
        "single_thread": single,
        "all_kinds": overall,
        "concurrency": concurrency,
        "during_rebuild": rebuild,
    }
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"written: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
