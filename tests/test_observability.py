"""Operations over real HTTP against a real gunicorn: /metrics summed across workers, the access
log, /health/live and /health/ready; the pure parts (log lines, redaction, kinds) in detail."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from iiif_server import accesslog
from iiif_server.check import free_port, running_server
from iiif_server.health import Readiness, manifests_built
from iiif_server.metrics import kind_of

TILE = "/iiif/3/big.tif/0,0,256,256/256,/0/default.jpg"  # one stored JPEG tile: pass-through
RENDERED = "/iiif/3/big.tif/full/100,/0/default.png"


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
    """Status, headers (names case-insensitive: uvicorn sends them lower-case) and body."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _worker_pids(folder: Path) -> set[int]:
    """Workers that timed a request: each writes its own histogram file, named by its pid."""
    return {int(re.sub(r"\D", "", path.name)) for path in folder.glob("histogram_*.db")}


def _count(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize("worker", ["gthread", "asgi"])
def test_metrics_are_summed_across_workers_and_every_request_is_logged(
    image_root: Path, tmp_path: Path, worker: str
) -> None:
    """Two workers, one of them stopped half-way (gunicorn starts another): the scrape must count
    the requests of every worker, alive or gone; the private metrics folder lives as long as the server.
    asgi: the repeated info.json and tiles are answered on the event loop, counted and logged the same."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    log = tmp_path / "server.log"
    args = ["serve", "--images", str(image_root), "--workers", "2"]
    with running_server(args, free_port(), {"TMPDIR": str(temp), "IIIF_SERVER_SERVER_WORKER": worker}, log=log) as base:
        for _ in range(4):
            assert _get(base + "/iiif/3/big.tif/info.json")[0] == 200
        folders = list(temp.glob("iiif-server-metrics-*"))
        assert len(folders) == 1
        served = _worker_pids(folders[0])
        os.kill(served.pop(), signal.SIGTERM)  # gunicorn replaces it; its counts must stay in the sum
        time.sleep(1)
        tiles = [_get(base + TILE) for _ in range(3)]
        assert {status for status, _, _ in tiles} == {200} and tiles[0][2][:2] == b"\xff\xd8"
        status, headers, rendered = _get(base + RENDERED)
        assert status == 200 and rendered[:4] == b"\x89PNG"
        assert _get(base + RENDERED, {"If-None-Match": headers["ETag"]})[0] == 304
        assert _get(base + "/iiif/3/nope.tif/info.json")[0] == 404
        secret = {"Authorization": "Bearer hunter2", "Referer": "https://museum.example/p?session=abc123&x=1"}
        assert _get(base + "/iiif/3/big.tif/info.json?token=s3cret&size=2", secret)[0] == 200
        # the other workers add their counts about a second late (metrics.Tally): a loaded machine
        # may delay that thread, so wait for the sum (every other figure is asserted exactly below)
        deadline = time.monotonic() + 10
        while True:
            time.sleep(1.2)
            status, headers, body = _get(base + "/metrics")
            info = _count(
                _samples(body.decode()), "iiif_http_request_duration_seconds_count", kind="info", status="200"
            )
            if info >= 5 or time.monotonic() > deadline:
                break
        workers = _worker_pids(folders[0])
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
    assert headers["Cache-Control"] == "no-store"
    assert len(workers) >= 2, workers
    samples = _samples(body.decode())
    duration = "iiif_http_request_duration_seconds_count"
    assert _count(samples, duration, kind="info", status="200") == 5
    assert _count(samples, duration, kind="info", status="404") == 1
    assert _count(samples, duration, kind="tile", status="200") == 3
    assert _count(samples, duration, kind="render", status="200") == 1
    assert _count(samples, duration, kind="tile", status="304") == 1
    assert _count(samples, duration, kind="page", status="200") >= 1  # the start-up polls of /
    responses = "iiif_image_responses_total"
    assert _count(samples, responses, tier="pass-through") == 3
    assert _count(samples, responses, tier="render") == 1
    assert _count(samples, responses, tier="304") == 1
    assert _count(samples, "iiif_cache_misses_total", tier="memory") >= 1
    assert ("iiif_redis_errors_total", ()) in samples and ("iiif_render_timeouts_total", ()) in samples
    assert not list(temp.glob("iiif-server-metrics-*")), "the private metrics folder outlived the server"

    lines = [line for line in log.read_text().splitlines() if '"GET ' in line]
    tile_lines = [line for line in lines if f'"GET {TILE} HTTP/1.1"' in line]
    assert len(tile_lines) == 3
    length = len(tiles[0][2])
    assert re.fullmatch(
        rf'127\.0\.0\.1 - - \[\d\d/\w{{3}}/\d{{4}}:\d\d:\d\d:\d\d \+0000\] "GET {re.escape(TILE)} HTTP/1\.1" '
        rf'200 {length} "-" "Python-urllib/[\d.]+" \d+\.\d{{6}} pass-through',
        tile_lines[0],
    ), tile_lines[0]
    render_line = next(line for line in lines if RENDERED in line and '" 200 ' in line)
    assert render_line.endswith(" render") and f" 200 {len(rendered)} " in render_line
    assert next(line for line in lines if RENDERED in line and '" 304 ' in line).endswith(" 304")
    assert any(re.search(r'"GET /metrics HTTP/1\.1" 200 \d+ ', line) for line in lines)
    redacted = next(line for line in lines if "size=2" in line)
    assert "token=REDACTED&size=2" in redacted and "session=REDACTED&x=1" in redacted
    assert "s3cret" not in log.read_text() and "hunter2" not in log.read_text() and "abc123" not in log.read_text()


def _small_root(tmp_path: Path, image_root: Path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    shutil.copy(image_root / "pattern.png", root / "pattern.png")
    return root


def test_health_probes_and_metrics_refused_to_other_addresses(image_root: Path, tmp_path: Path) -> None:
    """Ready with an image root and Redis; not ready (503, Retry-After, the check named) once the
    root is gone; /metrics 403 from an address not allowed, and through a proxy; JSON access log."""
    root = _small_root(tmp_path, image_root)
    env = {
        "IIIF_SERVER_CACHE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "IIIF_SERVER_CACHE_REDIS_PREFIX": "iiif-test-h6:",
        "IIIF_SERVER_METRICS_ALLOW": "10.1.2.3",
        "IIIF_SERVER_SERVER_ACCESS_LOG": "json",
    }
    log = tmp_path / "server.log"
    with running_server(["serve", "--images", str(root), "--workers", "1"], free_port(), env, log=log) as base:
        status, headers, body = _get(base + "/health/live")
        assert (status, body, headers["Cache-Control"]) == (200, b"ok\n", "no-store")
        status, headers, body = _get(base + "/health/ready")
        assert status == 200 and headers["Cache-Control"] == "no-store"
        assert json.loads(body) == {"status": "ready", "checks": {"images": "ok", "redis": "ok", "manifests": "ok"}}
        status, _, body = _get(base + "/metrics")
        assert status == 403 and b"[metrics] allow" in body
        root.rename(tmp_path / "unmounted")
        status, headers, body = _get(base + "/health/ready")
        assert status == 503 and headers["Retry-After"] == "5" and headers["Cache-Control"] == "no-store"
        assert json.loads(body)["checks"]["images"] == "image root not readable"
        assert json.loads(body)["status"] == "not ready"
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    ready = [e for e in entries if e["target"] == "/health/ready"]
    assert [e["status"] for e in ready] == [200, 503]
    assert (
        ready[0]["method"] == "GET"
        and ready[0]["client"] == "127.0.0.1"
        and ready[0]["bytes"] == len(b'{"status":"ready","checks":{"images":"ok","redis":"ok","manifests":"ok"}}\n')
    )
    assert isinstance(ready[0]["duration"], float) and ready[0]["tier"] is None


def test_ready_names_redis_when_it_does_not_answer_and_metrics_refuse_proxied_scrapes(
    image_root: Path, tmp_path: Path
) -> None:
    root = _small_root(tmp_path, image_root)
    env = {"IIIF_SERVER_CACHE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}  # nothing listens there
    with running_server(["serve", "--images", str(root), "--workers", "1"], free_port(), env) as base:
        status, headers, body = _get(base + "/health/ready")
        assert status == 503 and headers["Retry-After"] == "5"
        assert json.loads(body)["checks"] == {"images": "ok", "redis": "unreachable", "manifests": "ok"}
        # image requests still work: Redis is optional at run time
        assert _get(base + "/iiif/3/pattern.png/info.json")[0] == 200
        status, _, body = _get(base + "/metrics")
        assert status == 200 and b"iiif_redis_errors_total" in body
        assert _count(_samples(body.decode()), "iiif_redis_errors_total") >= 1
        assert _get(base + "/metrics", {"X-Forwarded-For": "127.0.0.1"})[0] == 403
        assert _get(base + "/metrics", {"Forwarded": "for=127.0.0.1"})[0] == 403


def test_metrics_off_is_not_found(image_root: Path, tmp_path: Path) -> None:
    root = _small_root(tmp_path, image_root)
    env = {"IIIF_SERVER_METRICS_ENABLED": "false", "IIIF_SERVER_SERVER_ACCESS_LOG": "off"}
    log = tmp_path / "server.log"
    with running_server(["serve", "--images", str(root), "--workers", "1"], free_port(), env, log=log) as base:
        assert _get(base + "/metrics")[0] == 404
        assert _get(base + "/health/live")[0] == 200
    assert '"GET ' not in log.read_text()


# -- details -----------------------------------------------------------------------------------


def _entry(**changes: object) -> accesslog.Entry:
    values: dict[str, object] = {
        "client": "203.0.113.9",
        "time": 0.0,
        "method": "GET",
        "target": "/iiif/3/a/info.json",
        "protocol": "HTTP/1.1",
        "status": 200,
        "bytes": 512,
        "duration": 0.0015,
        "tier": "memory",
        "referer": "",
        "user_agent": "Mirador",
    }
    return accesslog.Entry(**{**values, **changes})  # type: ignore[arg-type]


def test_combined_line_format_and_escaping() -> None:
    assert accesslog.combined(_entry()) == (
        '203.0.113.9 - - [01/Jan/1970:00:00:00 +0000] "GET /iiif/3/a/info.json HTTP/1.1" 200 512 "-" "Mirador" '
        "0.001500 memory"
    )
    forged = accesslog.combined(_entry(user_agent='x" 200 1 "\n127.0.0.1 - - [fake]', bytes=0, tier=None))
    assert "\n" not in forged and "\\x22 200 1 \\x22\\x0a127" in forged
    assert forged.endswith(' 200 - "-" "x\\x22 200 1 \\x22\\x0a127.0.0.1 - - [fake]" 0.001500 -')


def test_redaction_keeps_other_parameters() -> None:
    assert accesslog.redact("/a?token=abc&size=2&api_key=k&Signature=s") == (
        "/a?token=REDACTED&size=2&api_key=REDACTED&Signature=REDACTED"
    )
    assert accesslog.redact("/iiif/3/token/info.json") == "/iiif/3/token/info.json"
    assert "abc" not in accesslog.as_json(_entry(target="/x?access_token=abc"))


@pytest.mark.parametrize(
    ("path", "tier", "kind"),
    [
        ("/iiif/3/a/info.json", "memory", "info"),
        ("/iiif/2/a/0,0,256,256/256,/0/default.jpg", "pass-through", "tile"),
        ("/iiif/3/a/full/max/0/default.jpg", "render", "render"),
        ("/iiif/3/a/full/max/0/default.jpg", "304", "tile"),
        ("/iiif/manifests/KH-1", None, "presentation"),
        ("/iiif/activity/all-changes", None, "presentation"),
        ("/viewer", None, "page"),
        ("/", None, "page"),
        ("/items/KH-HV-0001", None, "page"),
        ("/browse/type", None, "page"),
        ("/search", None, "page"),
        ("/status", None, "page"),
        ("/admin/cache/purge", None, "other"),
    ],
)
def test_kinds(path: str, tier: str | None, kind: str) -> None:
    assert kind_of(path, tier) == kind


def test_manifests_are_waited_for_only_when_there_is_an_export(tmp_path: Path) -> None:
    export = tmp_path / "collection.csv"
    built = {"documents": 0}
    readiness = Readiness({"manifests": manifests_built(export, lambda: built["documents"])})
    assert readiness.run()[0]  # no export: nothing to wait for
    export.write_text("inventory_no\n")
    assert readiness.run() == (False, b'{"status":"not ready","checks":{"manifests":"not built"}}\n')
    built["documents"] = 3
    assert readiness.run()[0]


def test_a_tally_adds_what_observe_would_have() -> None:
    """Tally writes into prometheus_client's histogram internals: the exposition must be the same
    as for plain ``observe`` calls, bucket edges included (le is inclusive)."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from iiif_server import metrics

    durations = [0.0, 0.001, 0.0010001, 0.02, 0.5, 29.9, 30.0, 31.0, 120.0]
    tally = metrics.Tally(interval=3600)
    labels = ("tally-test", "299")
    before = _samples(generate_latest().decode())
    for duration in durations:
        tally.add(*labels, duration, "pass-through" if duration < 1 else None)
    tally.flush()
    after = _samples(generate_latest().decode())
    reference = CollectorRegistry()
    histogram = Histogram(
        "iiif_http_request_duration_seconds", "", ["kind", "status"], buckets=metrics.BUCKETS, registry=reference
    )
    for duration in durations:
        histogram.labels(*labels).observe(duration)
    expected = {key: value for key, value in _samples(generate_latest(reference).decode()).items()}
    assert expected  # 15 buckets, _count, _sum
    for key, value in expected.items():
        assert after.get(key, 0) - before.get(key, 0) == pytest.approx(value), key
    tier = ("iiif_image_responses_total", (("tier", "pass-through"),))
    assert after[tier] - before.get(tier, 0) == 5
