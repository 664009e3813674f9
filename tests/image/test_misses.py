"""Missing images are cheap (issue 11) and never stale: kept folder listings and remembered misses,
checked against each folder's stamp, so a file copied in is found at once."""

from __future__ import annotations

import os
import shutil
import time
import unicodedata
from pathlib import Path

import pytest

from iiif_server.errors import NotFound
from iiif_server.image import folders
from iiif_server.image.sources import FileSource

EXTENSIONS = (".tif", ".png", ".jpg")
PNG = Path(__file__).resolve().parents[2] / "iiif_server" / "data" / "67352ccc-d1b0-11e1-89ae-279075081939.png"


def _age(*paths: Path) -> None:
    """Date folders a minute back, as if last changed long ago (settled)."""
    past = time.time_ns() - 60 * 10**9
    for path in paths:
        os.utime(path, ns=(past, past))


def _missing(source: FileSource, identifier: str) -> bool:
    try:
        source.locate(identifier)
    except NotFound as error:
        assert str(error) == f"no image {identifier!r}"  # the same one line as ever
        return True
    return False


def _best(call: object, calls: int, rounds: int = 15) -> float:
    best = float("inf")
    for round_ in range(rounds):
        start = time.perf_counter()
        for index in range(calls):
            call(round_ * calls + index)  # type: ignore[operator]
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def test_a_miss_costs_a_few_hits_not_a_listing(tmp_path: Path) -> None:
    """Random missing names in a folder of 20 000 files: min-of-N per call, against a hit."""
    big = tmp_path / "big"
    big.mkdir()
    for number in range(20_000):
        (big / f"scan-{number:05d}.tif").touch()
    shutil.copy(PNG, big / "hit.png")
    _age(big, tmp_path)
    source = FileSource(tmp_path, EXTENSIONS)
    source.locate("big/hit.png")
    assert _missing(source, "big/warm-up")  # the one listing

    hit = _best(lambda i: source.locate("big/hit.png"), calls=500)
    miss = _best(lambda i: _missing(source, f"big/missing-{i}"), calls=100)
    assert miss < 8 * hit, (miss, hit)  # a listing of 20 000 names: ~3 000x (measured before)
    again = _best(lambda i: _missing(source, "big/missing-1"), calls=100)  # remembered
    assert again < 8 * hit, (again, hit)


def test_a_file_copied_in_after_a_miss_is_found_at_once(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    _age(tmp_path)
    source = FileSource(tmp_path, EXTENSIONS)
    assert _missing(source, "new") and _missing(source, "new")  # listed, then remembered
    shutil.copy(PNG, tmp_path / "new.png")
    assert source.locate("new").path == str(tmp_path / "new.png")


def test_a_name_added_within_the_timestamp_tick_is_found(tmp_path: Path) -> None:
    """Coarse timestamps: a file added just after the listing may leave the folder's mtime as it was."""
    folder = tmp_path / "f"
    folder.mkdir()
    source = FileSource(tmp_path, EXTENSIONS)
    assert _missing(source, "f/new")  # listed while the folder had just changed (unsettled)
    before = os.stat(folder).st_mtime_ns
    nfd = unicodedata.normalize("NFD", "ảnh mới.png")
    shutil.copy(PNG, folder / "new.png")
    shutil.copy(PNG, folder / nfd)
    os.utime(folder, ns=(before, before))  # the same tick: the stamp has not moved
    assert source.locate("f/new").path == str(folder / "new.png")
    assert source.locate(unicodedata.normalize("NFC", "f/ảnh mới")).path == str(folder / nfd)


def test_an_unsettled_listing_is_listed_again_once_settled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name in another normal form added in the same tick is found once the folder has settled."""
    monkeypatch.setattr(folders, "SETTLE_NS", 200_000_000)
    folder = tmp_path / "f"
    folder.mkdir()
    source = FileSource(tmp_path, EXTENSIONS)
    assert _missing(source, "f/x")
    before = os.stat(folder).st_mtime_ns
    mixed = unicodedata.normalize("NFD", "ảnh") + " mới.png"  # neither NFC nor NFD as a whole
    shutil.copy(PNG, folder / mixed)
    os.utime(folder, ns=(before, before))
    time.sleep(0.3)
    assert source.locate("f/ảnh mới").path == str(folder / mixed)


def test_a_miss_through_a_refused_name_is_not_remembered(tmp_path: Path) -> None:
    """A dangling symlink's target may appear without its folder changing: no remembered miss."""
    (tmp_path / "sub").mkdir()
    os.symlink("sub/real.png", tmp_path / "link.png")
    _age(tmp_path, tmp_path / "sub")
    source = FileSource(tmp_path, EXTENSIONS)
    assert _missing(source, "link.png")
    shutil.copy(PNG, tmp_path / "sub" / "real.png")
    assert source.locate("link.png").path == str(tmp_path / "sub" / "real.png")


def test_a_folder_over_the_bound_is_matched_by_exact_forms(tmp_path: Path) -> None:
    for number in range(10):
        (tmp_path / f"{number}.png").touch()
    nfd = unicodedata.normalize("NFD", "bình gốm.png")
    shutil.copy(PNG, tmp_path / nfd)
    _age(tmp_path)
    source = FileSource(tmp_path, EXTENSIONS, index_names=4)
    assert source.locate(unicodedata.normalize("NFC", "bình gốm")).path == str(tmp_path / nfd)
    assert source.locate("3").path == str(tmp_path / "3.png")
    assert _missing(source, "11") and source._known_miss("11")  # remembered
    assert len(source.folders._listings) == 1 and source.folders._listings.size == 1  # nothing of its names kept


def test_listings_are_bounded_by_their_names(tmp_path: Path) -> None:
    for folder in range(5):
        (tmp_path / f"d{folder}").mkdir()
        for number in range(30):
            (tmp_path / f"d{folder}" / f"{number}.png").touch()
    source = FileSource(tmp_path, EXTENSIONS, index_names=100)
    for folder in range(5):
        assert _missing(source, f"d{folder}/missing")
    assert source.folders._listings.size <= 100


def test_the_exact_form_wins_when_both_forms_exist(tmp_path: Path) -> None:
    nfc, nfd = unicodedata.normalize("NFC", "mặt.png"), unicodedata.normalize("NFD", "mặt.png")
    (tmp_path / nfc).write_bytes(b"c")
    (tmp_path / nfd).write_bytes(b"d")
    _age(tmp_path)
    source = FileSource(tmp_path, EXTENSIONS)
    assert source.locate(nfc).path == str(tmp_path / nfc)
    assert source.locate(nfd).path == str(tmp_path / nfd)


def test_known_answers_a_miss_from_kept_listings_without_a_search(tmp_path: Path) -> None:
    """The ASGI edge's inline lookup: a miss in a folder already listed is a 404 on the event loop."""
    (tmp_path / "sub").mkdir()
    _age(tmp_path, tmp_path / "sub")
    source = FileSource(tmp_path, EXTENSIONS)
    assert source.known("gone") is None  # nothing listed yet: the edge moves it to a thread
    assert _missing(source, "gone")
    for identifier in ("gone", "other", "nowhere/x"):
        with pytest.raises(NotFound, match=f"no image '{identifier}'"):
            source.known(identifier)
    assert source.known("sub/x") is None  # sub/ not listed yet
    assert source.known("../x") is None  # not for the inline path to judge: the thread says 400
    shutil.copy(PNG, tmp_path / "gone.png")
    assert source.known("gone") is None  # the folder changed: a thread looks again
    assert source.locate("gone").path == str(tmp_path / "gone.png")
