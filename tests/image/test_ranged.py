"""RangedObject's reads in detail (the real store is tests/test_s3_source.py): runs of missing chunks
are one GET each, cached chunks cost none, a pass-through read is exactly its bytes, and the
pass-through reader and libvips read a pyramid through it as from the file."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import pyvips

from iiif_server.cache.disk import DiskCache
from iiif_server.image.blobs import open_image
from iiif_server.image.passthrough import open_reader
from iiif_server.image.s3 import RangedObject, S3Config, S3Store
from iiif_server.image.sources import Located
from tests.conftest import make_pattern


class _Store(S3Store):
    """An S3Store whose GETs are slices of bytes in memory, recorded."""

    def __init__(self, data: bytes, chunks: DiskCache | None, chunk_bytes: int) -> None:
        super().__init__(S3Config("bucket"), chunks, chunk_bytes)
        self.data = data
        self.ranges: list[tuple[int, int]] = []

    def get(self, key: str, etag: str, start: int, length: int) -> bytes:
        self.ranges.append((start, length))
        return self.data[start : start + length]


def _object(data: bytes, tmp_path: Path, chunk: int = 100) -> tuple[RangedObject, _Store]:
    store = _Store(data, DiskCache(tmp_path / "chunks", 1 << 20, evict_in_background=False), chunk)
    return RangedObject(store, "k", "etag1", len(data)), store


def test_missing_chunks_are_fetched_in_runs_and_kept(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4  # 1024 bytes, chunks of 100
    blob, store = _object(data, tmp_path)
    assert blob.read(150, 20) == data[150:170]
    assert store.ranges == [(100, 100)]  # the chunk, not the bytes asked
    assert blob.read(50, 400) == data[50:450]
    assert store.ranges[1:] == [(0, 100), (200, 300)]  # chunk 1 was cached: two runs
    assert blob.read(1000, 100) == data[1000:] and store.ranges[-1] == (1000, 24)  # the short last chunk
    assert blob.read(1024, 10) == b""


def test_read_exact_is_one_get_of_exactly_the_bytes_unless_cached(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4
    blob, store = _object(data, tmp_path)
    assert blob.read_exact(130, 250) == data[130:380] and store.ranges == [(130, 250)]
    blob.read(0, 400)  # chunks 0..3 now cached
    count = len(store.ranges)
    assert blob.read_exact(130, 250) == data[130:380] and len(store.ranges) == count


def test_another_version_never_reads_the_old_chunks(tmp_path: Path) -> None:
    blob, store = _object(b"a" * 300, tmp_path)
    blob.read(0, 300)
    store.data = b"b" * 300
    newer = RangedObject(store, "k", "etag2", 300)
    assert newer.read(0, 300) == b"b" * 300
    assert blob == RangedObject(store, "k", "etag1", 300) and blob != newer  # equal by key and ETag


def test_the_store_pickles_without_its_client(tmp_path: Path) -> None:
    store = S3Store(S3Config("bucket", "p/"), DiskCache(tmp_path / "c", 1000), 1 << 20)
    store._client = object()
    copy: Any = pickle.loads(pickle.dumps(store))
    assert copy._client is None and copy.config == store.config and copy.chunks.root == tmp_path / "c"


def test_libvips_and_the_passthrough_reader_read_through_the_object(tmp_path: Path) -> None:
    path = tmp_path / "p.tif"
    make_pattern(1200, 900).tiffsave(
        str(path), tile=True, pyramid=True, compression="jpeg", tile_width=256, tile_height=256
    )
    data = path.read_bytes()
    blob, store = _object(data, tmp_path, chunk=64 * 1024)
    located = Located("p.tif", blob.name, "fp", 0.0, len(data), blob=blob)
    image = open_image(located, page=1)
    assert (image.width, image.height) == (600, 450)
    expected = pyvips.Image.new_from_file(str(path)).crop(300, 200, 64, 64)
    got = open_image(located).crop(300, 200, 64, 64)
    assert got.subtract(expected).abs().max() == 0
    file_reader, blob_reader = open_reader(path), open_reader(blob)
    assert file_reader is not None and blob_reader is not None and not blob_reader.local
    level = blob_reader.level(0)
    assert level is not None
    before = len(store.ranges)
    tile = blob_reader.jpeg(level, 1, 1)
    assert tile == file_reader.jpeg(file_reader.level(0), 1, 1)  # type: ignore[arg-type]
    assert len(store.ranges) - before <= 1
    file_reader.close()
    blob_reader.close()


class _Heads(_Store):
    """HEADs answered from a dict of key -> ETag, counted."""

    def __init__(self) -> None:
        super().__init__(b"", None, 100)
        self.etags: dict[str, str] = {}
        self.heads = 0

    def head(self, key: str) -> tuple[int, str, float] | None:
        self.heads += 1
        etag = self.etags.get(key)
        return (100, etag, 0.0) if etag is not None else None


def test_what_was_located_is_trusted_until_head_seconds_or_a_purge() -> None:
    from iiif_server.errors import NotFound
    from iiif_server.image.ranged import StoreSource

    store = _Heads()
    store.etags["a.tif"] = "v1"
    source = StoreSource(store, "", (".tif",), head_seconds=3600, miss_seconds=3600)
    generation: list[int | None] = [0]
    source.follow_purges(lambda: generation[0])
    assert source.locate("a.tif").fingerprint.startswith("s3-v1") and store.heads == 1
    store.etags["a.tif"] = "v2"  # replaced behind the server's back: trusted for head_seconds
    assert source.locate("a.tif").fingerprint.startswith("s3-v1") and store.heads == 1
    generation[0] = None  # a purge check is due: nothing is trusted until it is made
    assert source.known("a.tif") is None
    assert source.locate("a.tif").fingerprint.startswith("s3-v2") and store.heads == 2
    generation[0] = 0  # the check found no purge; what was asked meanwhile is asked again once
    assert source.locate("a.tif").fingerprint.startswith("s3-v2") and store.heads == 3
    assert source.locate("a.tif").fingerprint.startswith("s3-v2") and store.heads == 3
    store.etags["a.tif"] = "v3"
    generation[0] = 1  # a purge (ingest --replace, cache purge): shown at once
    assert source.locate("a.tif").fingerprint.startswith("s3-v3") and store.heads == 4
    with pytest.raises(NotFound):
        source.locate("b.tif")
    store.etags["b.tif"] = "v1"
    with pytest.raises(NotFound):
        source.locate("b.tif")  # a miss is remembered too
    generation[0] = 2
    assert source.locate("b.tif").fingerprint.startswith("s3-v1")
