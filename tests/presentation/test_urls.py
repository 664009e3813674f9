"""Every URL in every document, live and exported: no placeholder host, and every same-site URL works.

A real ``iiif-server demo`` (gunicorn) on the demo images; its manifests, collections and
Change Discovery pages are walked, every URL they hold on the server is dereferenced, and a
static export for the same base must hold every document it links (it has no item page).
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from iiif_server.check import free_port, running_server
from tests.conftest import DEMO_EXPORT, demo_env
from tests.presentation.test_demo import run_cli

#: Resources embedded in a manifest: the live server answers their ids; a static tree cannot (they nest
#: under the manifest's file).
EMBEDDED = {"Canvas", "AnnotationPage", "Annotation"}
#: Beside a static tree, not in it (docs/manifests.md: host the tree beside the image server).
IMAGE_API = ("iiif/3/", "iiif/2/")
#: The authorization services a restricted image's services name (the probe, login, token and logout
#: services): interactive or token endpoints, exercised by the access tests, not dereferenced here.
AUTH = "auth/"


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as response:  # redirects (image service base URIs) followed
        assert response.status == 200, url
        return response.read()


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def embedded(node: Any) -> dict[str, dict[str, Any]]:
    """The resources embedded in ``node`` by id."""
    found: dict[str, dict[str, Any]] = {}
    if isinstance(node, dict):
        if node.get("type") in EMBEDDED:
            found[node["id"]] = node
        for value in node.values():
            found |= embedded(value)
    elif isinstance(node, list):
        for value in node:
            found |= embedded(value)
    return found


def same_site(document: dict[str, Any], base: str, with_embedded: bool = True) -> set[str]:
    """URLs on ``base`` a client may follow (a static tree holds no embedded resources' ids)."""
    urls = {s for s in strings(document) if s.startswith(base + "/") and not s.startswith(f"{base}/{AUTH}")}
    return urls if with_embedded else urls - embedded(document).keys()


def no_placeholder(text: str, where: str) -> None:
    plain = text
    for _ in range(3):  # also what was percent-encoded once or twice into a query string
        plain = unquote(plain)
    assert "invalid" not in plain, f"{where}: {re.findall(r'.{40}invalid.{40}', plain)[:3]}"


@pytest.fixture(scope="module")
def live(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    state = tmp_path_factory.mktemp("urls-state")
    with running_server(["demo", "--workers", "2"], free_port(), env=demo_env(demo_root, state)) as base:
        yield base, state


def crawl(base: str) -> dict[str, dict[str, Any]]:
    """Every manifest, collection and activity page reachable from the top collection and the stream."""
    found: dict[str, dict[str, Any]] = {}
    queue = [f"{base}/iiif/collections/top", f"{base}/iiif/activity/all-changes"]
    while queue:
        url = queue.pop()
        if url in found:
            continue
        body = get(url)
        no_placeholder(body.decode(), url)
        found[url] = document = json.loads(body)
        for link in same_site(document, base, with_embedded=False):
            if "/iiif/manifests/" in link or "/iiif/collections/" in link or "/iiif/activity/" in link:
                queue.append(link)
    return found


def test_every_url_of_every_served_document_works(live: tuple[str, Path]) -> None:
    base, _ = live
    documents = crawl(base)
    manifests = {url: d for url, d in documents.items() if d.get("type") == "Manifest"}
    assert len(manifests) == 9 and sum(d.get("type") == "Collection" for d in documents.values()) == 11
    links = set().union(*(same_site(d, base) for d in documents.values()))
    parts = {key: value for d in manifests.values() for key, value in embedded(d).items()}
    contexts = {key: d["@context"] for d in manifests.values() for key in embedded(d)}
    assert "http://iiif.io/api/auth/2/context.json" in contexts[f"{base}/iiif/manifests/KH-HV-0104/canvas/1"]
    assert {part["type"] for part in parts.values()} == EMBEDDED and parts.keys() <= links
    for url in sorted(links - documents.keys()):  # canvases and annotations, images, image services, item pages
        body = get(url)
        no_placeholder(body.decode("latin-1"), url)
        if url in parts:  # a canvas, annotation page or annotation: as embedded, with its manifest's context
            assert json.loads(body) == {"@context": contexts[url], **parts[url]}
    for url, manifest in manifests.items():
        (homepage,) = manifest["homepage"]
        page = get(homepage["id"]).decode()
        assert f'href="{url}"' in page  # the record's item page links this very manifest


def test_a_static_export_holds_every_document_it_links(live: tuple[str, Path], demo_root: Path, tmp_path: Path) -> None:
    base, state = live
    site = tmp_path / "site"
    env = {
        "IIIF_SERVER_MANIFESTS_SOURCE": str(DEMO_EXPORT),
        "IIIF_SERVER_MANIFESTS_STATE_DIR": str(state),  # the live server's: the same stream
        "IIIF_SERVER_CACHE_DISK_DIR": str(state / "cache"),
    }
    result = run_cli("--images", str(demo_root), "--out", str(site), "--base-url", base, env=env)
    assert result.returncode == 0, result.stderr
    files = {f"{base}/{path.relative_to(site)}": path for path in site.rglob("*") if path.is_file()}
    assert len(files) == 9 + 11 + 2
    for url, path in files.items():
        text = path.read_text(encoding="utf-8")
        no_placeholder(text, url)
        document = json.loads(text)
        if document["type"] == "Manifest":
            assert "homepage" not in document  # no [manifests] item_homepage, and the tree has no item page
            served = json.loads(get(url))
            served.pop("homepage")
            assert document == served  # otherwise the very same document
        for link in same_site(document, base, with_embedded=False):
            if not link.removeprefix(base + "/").startswith(IMAGE_API):
                assert link in files, f"{url} links {link}, which the tree does not hold"

    homepage = "https://museum.example/items/{inventory_number}"
    env |= {"IIIF_SERVER_MANIFESTS_ITEM_HOMEPAGE": homepage, "IIIF_SERVER_MANIFESTS_STATE_DIR": str(tmp_path / "state")}
    own = tmp_path / "own"
    result = run_cli("--images", str(demo_root), "--out", str(own), "--base-url", base, env=env)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((own / "iiif/manifests/KH-HV-0101").read_text(encoding="utf-8"))
    assert manifest["homepage"][0]["id"] == "https://museum.example/items/KH-HV-0101"
