"""Record a researcher's Mirador session: every request the viewer makes to the Image API, in order.

A real Mirador 4 (the copy vendored in the package, at ``/viewer``) in Debian's headless Chromium,
driven by Playwright, against a real ``iiif-server serve`` over a two-page record of large synthetic
photographs (``bench/synth_images.py``). The scripted visit: open the viewer and let the first tiles
load, zoom in with the mouse wheel at a detail, pan by dragging, zoom out, go to the next canvas and
zoom there. What Mirador asked of the server (manifest, info.json, tiles, thumbnails) is written, with
time offsets, to ``mirador.json`` beside this file; the identifiers become placeholders (``{canvas1}``,
``{canvas2}``, ``{manifest}``) so ``replay.py`` can send it against any record whose images have the
same size (the tile grid depends on it). Re-record after a Mirador upgrade or a change of the viewer
page, and commit the result::

    .venv/bin/python bench/session/record.py [--width 8000 --height 6000] [--out bench/session/mirador.json]

The images are kept in ``bench/images/session-WxH/`` (git-ignored), shared with ``replay.py``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
sys.path.insert(0, str(BENCH / "cluster"))
sys.path.insert(0, str(BENCH))

import cluster as bc  # noqa: E402  (bench/cluster/cluster.py: the export's columns)
from synth_images import build  # noqa: E402

import iiif_server  # noqa: E402
from iiif_server.check import free_port, running_server  # noqa: E402
from iiif_server.config import ENV_PREFIX  # noqa: E402

OUT = HERE / "mirador.json"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 900}
MIRADOR_README = Path(iiif_server.__file__).parent / "web" / "static" / "mirador" / "README.md"
RECORD = "KH-SS-0001"
#: Where the researcher zooms in, as fractions of the viewer's canvas: off-centre, a detail.
DETAIL = (0.62, 0.41)
ZOOM_STEPS = 4
#: Wheel notches per step (OpenSeadragon zooms 1.2× per notch): four steps in go past one image pixel per
#: screen pixel of an 8000-px image fitted in the window, as a researcher reading a detail does.
NOTCHES = 3
PANS = [(-220, -90), (160, -140), (-120, 200)]


def images_folder(width: int, height: int) -> Path:
    """The session's synthetic masters, made once (git-ignored, like bench/images/)."""
    return BENCH / "images" / f"session-{width}x{height}"


def image_name(n: int) -> str:
    return f"photo-{n:02d}.tif"


def make_photos(folder: Path, count: int, width: int, height: int) -> list[str]:
    """``count`` photo-like pyramids of ``width`` × ``height`` (seed = their number), those missing only."""
    names = [image_name(n) for n in range(1, count + 1)]
    for n, name in enumerate(names, start=1):
        if not (folder / name).exists():
            build(folder / name, width, height, seed=n)
    return names


def mirador_version() -> str:
    """The vendored Mirador's version, as its README states it (the bundle does not expose one)."""
    found = re.search(r"\*\*Mirador ([0-9][0-9A-Za-z.\-]*)\*\*", MIRADOR_README.read_text(encoding="utf-8"))
    if found is None:
        raise RuntimeError(f"no '**Mirador X.Y.Z**' in {MIRADOR_README}")
    return found.group(1)


def placeholders(paths: list[str], identifiers: list[str], manifest_path: str) -> list[str]:
    """Each identifier (percent-encoded as in the URLs) -> ``{canvasN}``, the manifest path -> ``{manifest}``."""
    out = []
    for path in paths:
        if path == manifest_path:
            out.append("{manifest}")
            continue
        for n, identifier in enumerate(identifiers, start=1):
            for form in {quote(identifier, safe=""), identifier}:
                path = path.replace(f"/{form}/", f"/{{canvas{n}}}/")
        out.append(path)
    return out


def _quiet(page: Any, seen: list[Any], settle: float = 1.0, limit: float = 20.0) -> None:
    """Until no request has started for ``settle`` seconds (the viewer has what it wants), at most ``limit``."""
    deadline = time.monotonic() + limit
    count, since = len(seen), time.monotonic()
    while time.monotonic() < deadline:
        page.wait_for_timeout(100)
        if len(seen) != count:
            count, since = len(seen), time.monotonic()
        elif time.monotonic() - since >= settle:
            return


def _wheel(page: Any, direction: int) -> None:
    """One zoom step: NOTCHES wheel notches in quick succession (-1 in, +1 out)."""
    for _ in range(NOTCHES):
        page.mouse.wheel(0, 100 * direction)
        page.wait_for_timeout(60)


def _visit(page: Any, seen: list[Any]) -> None:
    """The scripted researcher: zoom at a detail, pan, zoom out, next canvas, zoom there."""
    canvas = page.locator(".openseadragon-canvas").first
    canvas.wait_for(state="visible", timeout=30_000)
    _quiet(page, seen)
    box = canvas.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] * DETAIL[0], box["y"] + box["height"] * DETAIL[1]
    page.mouse.move(x, y)
    for _ in range(ZOOM_STEPS):  # a flick of the wheel, then a look: the tiles of each step are asked for
        _wheel(page, -1)
        _quiet(page, seen, settle=0.8)
    for dx, dy in PANS:
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + dx, y + dy, steps=12)
        page.mouse.up()
        x, y = x + dx, y + dy
        _quiet(page, seen, settle=0.8)
    for _ in range(ZOOM_STEPS - 1):
        _wheel(page, 1)
        _quiet(page, seen, settle=0.6)
    page.get_by_role("button", name="Next item").click()
    _quiet(page, seen)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(ZOOM_STEPS - 1):
        _wheel(page, -1)
        _quiet(page, seen, settle=0.8)


def record(width: int, height: int, out: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    folder = images_folder(width, height)
    identifiers = make_photos(folder, 2, width, height)
    with tempfile.TemporaryDirectory(prefix="iiif-record-") as temp:
        base = Path(temp)
        export = bc.write_export(
            base / "export.csv",
            [[RECORD, "Phiên ghi", "Session", "hiện vật", "", "", "", "", "", "Kho", "", "", "public", bc.RIGHTS,
              "", "", ";".join(identifiers)]],
        )  # fmt: skip
        env = {f"{ENV_PREFIX}MANIFESTS_SOURCE": str(export), f"{ENV_PREFIX}MANIFESTS_STATE_DIR": str(base / "state")}
        command = ["serve", "--images", str(folder), "--workers", "2"]
        with running_server(command, free_port(), env, log=base / "server.log") as url:
            manifest_path = f"/iiif/manifests/{RECORD}"
            seen: list[tuple[float, str]] = []
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_context(
                        viewport={"width": VIEWPORT["width"], "height": VIEWPORT["height"]}
                    ).new_page()
                    start = time.monotonic()

                    def on_request(request: Any) -> None:
                        path = urlsplit(request.url).path
                        if request.url.startswith(url) and (path.startswith("/iiif/3/") or path == manifest_path):
                            seen.append((time.monotonic() - start, path))

                    page.on("request", on_request)
                    page.goto(f"{url}/viewer?manifest={quote(url + manifest_path, safe='')}", wait_until="load")
                    _visit(page, seen)
                finally:
                    browser.close()
    paths = placeholders([path for _, path in seen], identifiers, manifest_path)
    session = {
        "recorded": time.strftime("%Y-%m-%d", time.gmtime()),
        "viewer": {"name": "Mirador", "version": mirador_version(), "page": "/viewer", "viewport": VIEWPORT},
        "browser": "Debian chromium, headless (Playwright)",
        "image": {"width": width, "height": height, "tile": 256},
        "canvases": len(identifiers),
        "placeholders": {"{manifest}": "the record's manifest path", "{canvasN}": "canvas N's image identifier"},
        "visit": f"{NOTCHES} wheel notches a step: zoom in x{ZOOM_STEPS} at {DETAIL}, {len(PANS)} drags, "
        f"zoom out x{ZOOM_STEPS - 1}, next canvas, zoom in x{ZOOM_STEPS - 1}",
        "requests": [{"t": round(t, 3), "path": path} for (t, _), path in zip(seen, paths, strict=True)],
    }
    out.write_text(json.dumps(session, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=8000)
    parser.add_argument("--height", type=int, default=6000)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    session = record(args.width, args.height, args.out)
    paths = [r["path"] for r in session["requests"]]
    info = sum(p.endswith("/info.json") for p in paths)
    print(f"{len(paths)} requests ({info} info.json, 1 manifest) in {session['requests'][-1]['t']:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
