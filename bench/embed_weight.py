"""What an embed costs a museum's visitor, measured in Chromium (issue 13).

::

    .venv/bin/python bench/embed_weight.py [--demo-root DIR] [--runs 5]

Starts ``iiif-server demo`` (gunicorn, 2 workers; the demo images are synthesised into DIR on first
use, a temporary folder by default) and drives Debian's /usr/bin/chromium through Playwright, reading
what went over the wire from the DevTools protocol (``Network.loadingFinished.encodedDataLength``:
bytes received, headers included; a body is that minus the response's headers):

1. weight of an OpenSeadragon embed **before tiles** (HTML + JS + CSS + info.json) on a first visit
   (new browser context) and a repeat visit (same context): bytes, and how many assets went over
   the network again;
2. the time from navigation start to OpenSeadragon's first ``tile-drawn`` event: the first visit
   with the server's caches cold (AVIF tiles rendered), then the median of ``--runs`` first visits
   in new contexts (server caches warm);
3. bytes per tile and per thumbnail transferred, AVIF (Chromium's choice) against JPEG (a browser
   that decodes neither AVIF nor WebP, simulated by embed.js's sessionStorage answer) on the first
   view of every demo record's embed, and ``full/!400,400`` of every demo image.

Prints markdown tables for docs/performance.md. Nothing here is asserted (tests never assert timings).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserContext, CDPSession, Page, sync_playwright

from iiif_server.check import free_port, running_server
from iiif_server.demo import DEMO_IMAGES
from iiif_server.image.model import ApiVersion
from iiif_server.image.service import service_path
from iiif_server.web import urls

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
RECORD = "KH-HV-0101"
RECORDS = (
    "KH-DT-0001",
    "KH-DT-0002",
    "KH-HV-0001",
    "KH-HV-0101",
    "KH-HV-0102",
    "KH-HV-0103",
    "KH-PVT-0001",
    "KH-TL-0001",
)
NO_AVIF = (
    "sessionStorage.setItem('iiif-embed-decodes', JSON.stringify({avif: false, webp: false, jpg: true, png: true}))"
)
TIMEOUT = 60_000


@dataclass
class Transfer:
    url: str
    kind: str = ""  # CDP resource type
    status: int = 0
    headers: int = 0  # bytes of the response head received
    total: int = 0  # bytes received, headers included
    cached: bool = False  # answered from the browser's cache

    @property
    def body(self) -> int:
        return max(0, self.total - self.headers)

    @property
    def tile(self) -> bool:
        return "/iiif/3/" in self.url and "/default." in self.url


@dataclass
class Wire:
    """The page's requests as the DevTools protocol sees them."""

    transfers: dict[str, Transfer] = field(default_factory=dict)

    def attach(self, session: CDPSession) -> Wire:
        session.send("Network.enable")
        session.on("Network.requestWillBeSent", self._sent)
        session.on("Network.responseReceived", self._received)
        session.on("Network.requestServedFromCache", self._cached)
        session.on("Network.loadingFinished", self._finished)
        return self

    def _sent(self, event: dict[str, Any]) -> None:
        self.transfers[event["requestId"]] = Transfer(event["request"]["url"], event.get("type", ""))

    def _received(self, event: dict[str, Any]) -> None:
        transfer = self.transfers.get(event["requestId"])
        if transfer:
            response = event["response"]
            transfer.status = response["status"]
            transfer.headers = int(response.get("encodedDataLength", 0))
            transfer.cached = transfer.cached or bool(response.get("fromDiskCache") or response.get("fromMemoryCache"))

    def _cached(self, event: dict[str, Any]) -> None:
        if event["requestId"] in self.transfers:
            self.transfers[event["requestId"]].cached = True

    def _finished(self, event: dict[str, Any]) -> None:
        transfer = self.transfers.get(event["requestId"])
        if transfer:
            transfer.total = int(event["encodedDataLength"])

    def clear(self) -> None:
        self.transfers.clear()


@contextmanager
def watched(context: BrowserContext) -> Iterator[tuple[Page, Wire]]:
    page = context.new_page()
    wire = Wire().attach(context.new_cdp_session(page))
    try:
        yield page, wire
    finally:
        page.close()


def visit(page: Page, url: str, settle_ms: int = 1500) -> float | None:
    """Open an embed, wait for its first painted tile, let the first view load; the tile's time."""
    page.goto(url, wait_until="load", timeout=TIMEOUT)
    page.wait_for_function("() => window.iiifEmbed && iiifEmbed.firstTileDrawn !== null", timeout=TIMEOUT)
    page.wait_for_timeout(settle_ms)
    drawn: float | None = page.evaluate("iiifEmbed.firstTileDrawn")
    return drawn


def before_tiles(wire: Wire) -> list[Transfer]:
    return [t for t in wire.transfers.values() if not t.tile and not t.url.startswith("data:")]


def kb(n: float) -> str:
    return f"{n / 1000:.1f} KB"


def weight(base: str, browser: Any) -> None:
    url = base + urls.embed_path(RECORD)
    context = browser.new_context(viewport={"width": 800, "height": 600})
    with watched(context) as (page, wire):
        visit(page, url)
        first = before_tiles(wire)
        wire.clear()
        visit(page, url)
        repeat = before_tiles(wire)
    context.close()
    print(f"\n### Weight before tiles: {url.removeprefix(base)} (OpenSeadragon, 800 × 600)\n")
    print("| request | first visit | repeat visit |")
    print("|---|---|---|")
    again = {t.url: t for t in repeat}
    for t in first:
        name = t.url.removeprefix(base).split("?")[0]
        later = again.get(t.url)
        later_text = (
            "not asked" if later is None else ("cache" if later.cached or later.total == 0 else kb(later.total))
        )
        print(f"| `{name[:70]}` | {kb(t.total)} | {later_text} |")
    network = [t for t in repeat if not t.cached and t.total > 0]
    print(f"| **total** | **{kb(sum(t.total for t in first))}** | **{kb(sum(t.total for t in network))}** |")
    assets = [t for t in network if "/assets/" in t.url]
    print(f"\nRepeat visit: {len(network)} request(s) over the network, {len(assets)} of them assets.")


def first_tile(base: str, browser: Any, runs: int) -> None:
    url = base + urls.embed_path(RECORD)
    times = []
    for _ in range(runs + 1):
        context = browser.new_context(viewport={"width": 800, "height": 600})
        with watched(context) as (page, _wire):
            times.append(visit(page, url, settle_ms=200))
        context.close()
    cold, warm = times[0], [t for t in times[1:] if t is not None]
    print("\n### Time to the first painted tile (navigation start → OpenSeadragon tile-drawn)\n")
    print(f"- first visit, server caches cold: {cold:.0f} ms")
    print(
        f"- median of {runs} first visits (new contexts), server caches warm: {statistics.median(warm):.0f} ms "
        f"(min {min(warm):.0f}, max {max(warm):.0f})"
    )


def formats(base: str, browser: Any) -> None:
    rows: dict[str, dict[str, list[int]]] = {}
    for mode in ("avif", "jpg"):
        tiles: list[int] = []
        thumbs: list[int] = []
        context = browser.new_context(viewport={"width": 800, "height": 600})
        if mode == "jpg":
            context.add_init_script(NO_AVIF)
        with watched(context) as (page, wire):
            for record in RECORDS:
                wire.clear()
                visit(page, base + urls.embed_path(record), settle_ms=1000)
                chosen = page.evaluate("iiifEmbed.format")
                assert chosen == mode, (record, chosen)
                tiles += [t.body for t in wire.transfers.values() if t.tile and t.status == 200 and not t.cached]
            for identifier in DEMO_IMAGES:
                wire.clear()
                thumb = f"{base}{service_path(ApiVersion.V3, identifier)}/full/!400,400/0/default.{mode}"
                page.goto(thumb, timeout=TIMEOUT)
                thumbs += [t.body for t in wire.transfers.values() if t.status == 200]
        context.close()
        rows[mode] = {"tiles": tiles, "thumbs": thumbs}
    print("\n### Bytes per tile and per thumbnail transferred (bodies), Chromium\n")
    print("| format | tiles | mean per tile | median per tile | thumbnails | mean per thumbnail |")
    print("|---|---|---|---|---|---|")
    for mode, found in rows.items():
        t, th = found["tiles"], found["thumbs"]
        print(
            f"| {mode} | {len(t)} | {kb(statistics.mean(t))} | {kb(statistics.median(t))} | {len(th)} | "
            f"{kb(statistics.mean(th))} |"
        )
    a, j = rows["avif"], rows["jpg"]
    saved_tile = 1 - statistics.mean(a["tiles"]) / statistics.mean(j["tiles"])
    saved_thumb = 1 - statistics.mean(a["thumbs"]) / statistics.mean(j["thumbs"])
    print(f"\nAVIF saves {saved_tile:.0%} per tile and {saved_thumb:.0%} per thumbnail against JPEG.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo-root", type=Path, help="the demo images (synthesised there on first use)")
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = options.demo_root or Path(scratch) / "images"
        env = {"IIIF_SERVER_DEMO_ROOT": str(root), "IIIF_SERVER_DEMO_STATE_DIR": str(Path(scratch) / "state")}
        with (
            running_server(["demo", "--workers", "2"], free_port(), env=env, start_timeout=300) as base,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                first_tile(base, browser, options.runs)  # first: the server's caches are cold
                weight(base, browser)
                formats(base, browser)
            finally:
                browser.close()


if __name__ == "__main__":
    sys.exit(main())
