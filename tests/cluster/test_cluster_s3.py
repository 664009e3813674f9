"""The cluster serving from the object store: SeaweedFS, Redis, two ``iiif-server serve`` nodes, HAProxy.

bench/cluster/cluster.py with ``bucket=``: the masters are only in the bucket (the nodes are told an image
root that does not exist), each node has its own chunk cache. Through the balancer and each node directly,
every node serves every image from the bucket; a derivative rendered by one node is served by the other from
Redis without rendering again and without reading the master (``iiif_renders_total``,
``iiif_store_bytes_total`` from each node's /metrics); a replaced object is served new by both. The bytes
each node reads per pass-through tile and per ``full/1024,`` are printed (``-s``) for docs/performance.md.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import pyvips
from PIL import Image

from tests.cluster.test_cluster import bc, pytestmark  # noqa: F401  (the harness; skipped without haproxy/redis)
from tests.conftest import make_pattern
from tests.s3_store import ACCESS_KEY, SECRET_KEY, S3Store, s3_store  # noqa: F401

SIZE = 2048  # the harness's images: red = x ramp, green = y ramp, blue = 40 * n
HEAD_SECONDS = 0.5
PHOTO = "fresh/ảnh.tif"  # asked of no node before the test of Redis; a key in a "folder", not NFC-trivial


def _photo(path: Path) -> bytes:
    """A scan's size and entropy (6000 × 4000, pattern + noise, JPEG Q 90, 256-px tiles, ~35 MB): the master
    of docs/performance.md's single-node figures ("Masters on S3"), so the cluster's compare."""
    noise = pyvips.Image.gaussnoise(6000, 4000, sigma=40).bandjoin([pyvips.Image.gaussnoise(6000, 4000)] * 2)
    photo = (make_pattern(6000, 4000).cast("float") * 0.6 + noise * 0.4).cast("uchar").copy(interpretation="srgb")
    photo.tiffsave(str(path), tile=True, pyramid=True, compression="jpeg", Q=90, tile_width=256, tile_height=256)
    return path.read_bytes()


@dataclass
class Site:
    cluster: Any
    bucket: Any
    replacement: bytes  # obj-3.tif's bytes, to replace another object with


@pytest.fixture(scope="module")
def site(s3_store: S3Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:  # noqa: F811
    folder = tmp_path_factory.mktemp("cluster-s3")
    images, export = bc.make_collection(folder)
    bucket = bc.Bucket(
        s3_store.endpoint_url, s3_store.bucket, ACCESS_KEY, SECRET_KEY, prefix="cluster/", head_seconds=HEAD_SECONDS
    )
    bucket.upload(images)
    client = bucket.client()
    client.put_object(Bucket=bucket.bucket, Key=bucket.prefix + PHOTO, Body=_photo(folder / "photo.tif"))
    replaced = (images / "obj-1.tif").read_bytes()
    client.put_object(Bucket=bucket.bucket, Key=bucket.prefix + "replaced.tif", Body=replaced)
    replacement = (images / "obj-3.tif").read_bytes()
    nowhere = folder / "no-images-here"
    with bc.cluster(nodes=2, workers=1, folder=folder / "c", images=nowhere, export=export, bucket=bucket) as running:
        for path in (images / "obj-1.tif", images / "obj-2.tif", images / "obj-3.tif", folder / "photo.tif"):
            path.unlink()  # no copy on disk anywhere while the nodes serve
        assert not nowhere.exists()
        yield Site(running, bucket, replacement)


def _pixel(body: bytes, x: int, y: int) -> tuple[int, ...]:
    return tuple(Image.open(io.BytesIO(body)).convert("RGB").getpixel((x, y)))


def test_every_node_serves_every_image_from_the_bucket(site: Site) -> None:
    shared = site.cluster
    for i, node in enumerate(shared.nodes, start=1):
        renders = bc.renders(node)
        for n in (1, 2, 3):
            status, body = bc.get(f"{node.url}/iiif/3/obj-{n}.tif/info.json")
            info = json.loads(body)
            assert status == 200 and (info["width"], info["height"]) == (SIZE, SIZE), body
            assert info["id"] == f"{node.url}/iiif/3/obj-{n}.tif"
            # A size of its own per node: each renders it, from its own chunk cache filled from the bucket.
            status, body = bc.get(f"{node.url}/iiif/3/obj-{n}.tif/full/{64 * i},/0/default.png")
            assert status == 200
            red, green, blue = _pixel(body, 48 * i, 16 * i)
            assert abs(red - 48 * 4) <= 8 and abs(green - 16 * 4) <= 8 and abs(blue - 40 * n) <= 8
            status, body = bc.get(f"{node.url}/iiif/3/obj-{n}.tif/1024,512,256,256/256,/0/default.jpg")
            assert status == 200
            red, green, blue = _pixel(body, 128, 128)  # pixel (1152, 640) of the master
            assert abs(red - 1152 * 255 // SIZE) <= 8 and abs(green - 640 * 255 // SIZE) <= 8
            assert abs(blue - 40 * n) <= 8
        assert bc.renders(node) >= renders + 3
        # The bytes came from the bucket into the node's own chunk cache (the writer's may have been filled by
        # its first manifest build, which sizes the images before serving and is not in /metrics).
        chunks = [path for path in (shared.folder / node.name / "s3-chunks").rglob("*") if path.is_file()]
        assert len(chunks) >= 3, chunks
    for n in (1, 2, 3):
        for _ in range(2):
            status, body = bc.get(f"{shared.url}/iiif/3/obj-{n}.tif/full/64,/0/default.png")
            assert status == 200 and abs(_pixel(body, 48, 16)[2] - 40 * n) <= 8
    sent = {name: int(row["stot"]) for name, row in shared.server_stats().items()}
    assert all(count >= 3 for count in sent.values()), sent  # round-robin reached both nodes
    manifest = json.loads(bc.get(shared.url + "/iiif/manifests/KH-CL-0002")[1])
    assert (manifest["items"][0]["width"], manifest["items"][0]["height"]) == (SIZE, SIZE)  # sized from the bucket


def test_a_derivative_rendered_by_one_node_is_served_by_the_other_without_reading_the_master(site: Site) -> None:
    first, second = site.cluster.nodes
    image = "/iiif/3/" + quote(PHOTO, safe="")  # never asked of either node before
    master = site.bucket.client().head_object(Bucket=site.bucket.bucket, Key=site.bucket.prefix + PHOTO)
    figures: dict[str, list[int]] = {}
    for path in (f"{image}/full/1024,/0/default.jpg", f"{image}/3000,2000,700,500/301,/0/default.png"):
        renders, fetched = (bc.renders(first), bc.renders(second)), (bc.store_bytes(first), bc.store_bytes(second))
        status, rendered = bc.get(first.url + path)
        assert status == 200
        assert bc.renders(first) == renders[0] + 1
        read_by_first = int(bc.store_bytes(first) - fetched[0])
        assert 0 < read_by_first < master["ContentLength"]
        time.sleep(0.3)
        status, cached = bc.get(second.url + path)
        assert status == 200 and cached == rendered
        assert bc.renders(second) == renders[1]  # no render: the bytes came from Redis
        assert bc.store_bytes(second) == fetched[1]  # and not a byte of the master from the bucket
        for _ in range(4):  # through the balancer, whichever node answers
            assert bc.get(site.cluster.url + path) == (200, rendered)
        assert (bc.renders(first), bc.renders(second)) == (renders[0] + 1, renders[1])
        figures[path.rsplit("/", 3)[1]] = [read_by_first, 0]
    assert Image.open(io.BytesIO(rendered)).size == (301, 215)
    # A pass-through tile is the stored bytes: one ranged GET by the first node that serves it, then
    # in Redis for every node (a GET from the bucket costs more than a cache lookup).
    for tile in ("0,0,256,256", "1024,768,256,256", "5120,3584,256,256"):
        read, bodies = [], []
        for node in (first, second):
            before = bc.store_bytes(node)
            status, body = bc.get(f"{node.url}{image}/{tile}/256,/0/default.jpg")
            assert status == 200 and Image.open(io.BytesIO(body)).size == (256, 256)
            read.append(int(bc.store_bytes(node) - before))
            bodies.append(body)
        assert read[0] > 0 and read[1] == 0 and bodies[0] == bodies[1], (tile, read)
        figures[tile] = read
    before = bc.store_bytes(first), bc.store_bytes(second)
    for node in (first, second):  # the same tile again on each node: from its memory tier
        assert bc.get(f"{node.url}{image}/5120,3584,256,256/256,/0/default.jpg")[0] == 200
    figures["again"] = [int(bc.store_bytes(first) - before[0]), int(bc.store_bytes(second) - before[1])]
    assert figures["again"] == [0, 0]
    print(f"\nbytes read from the bucket (node1, node2), master of {master['ContentLength']} bytes: {figures}")


def test_a_replaced_object_is_served_new_by_both_nodes(site: Site) -> None:
    shared = site.cluster
    paths = ["/iiif/3/replaced.tif/0,0,256,256/256,/0/default.jpg", "/iiif/3/replaced.tif/full/128,/0/default.png"]
    old_etags = {}
    for node in shared.nodes:
        for path in paths:
            status, body = bc.get(node.url + path)
            assert status == 200 and abs(_pixel(body, 10, 10)[2] - 40) <= 8  # obj-1: blue 40
            old_etags[node.name, path] = _etag(node.url + path)
    client = site.bucket.client()
    client.put_object(Bucket=site.bucket.bucket, Key=site.bucket.prefix + "replaced.tif", Body=site.replacement)
    time.sleep(HEAD_SECONDS + 0.3)
    for _ in range(2):
        for base in [node.url for node in shared.nodes] + [shared.url]:
            for path in paths:
                status, body = bc.get(base + path)
                assert status == 200 and abs(_pixel(body, 10, 10)[2] - 120) <= 8, (base, path)  # obj-3: blue 120
    for node in shared.nodes:
        for path in paths:
            assert _etag(node.url + path) != old_etags[node.name, path]


def _etag(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=30) as response:
        return str(response.headers["ETag"])
