"""Identifier -> file: NFC/NFD names, extensions, and nothing outside the image root."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest

from iiif_server.errors import InvalidRequest, NotFound
from iiif_server.image.sources import FileSource
from tests.conftest import NFC_NAME, NFD_NAME, SUBFOLDER

EXTENSIONS = (".tif", ".png", ".jpg")


@pytest.fixture
def source(image_root: Path) -> FileSource:
    return FileSource(image_root, EXTENSIONS)


@pytest.mark.parametrize("form", ["NFC", "NFD"])
@pytest.mark.parametrize("name", [NFC_NAME, NFD_NAME])
def test_unicode_names_resolve_in_either_normal_form(source: FileSource, form: str, name: str) -> None:
    identifier = unicodedata.normalize(form, f"{SUBFOLDER}/{name}")
    located = source.locate(identifier)
    assert os.path.basename(located.path).encode() in {
        unicodedata.normalize("NFC", name).encode(),
        unicodedata.normalize("NFD", name).encode(),
    }


def test_extension_may_be_left_off(source: FileSource, image_root: Path) -> None:
    assert source.locate("alpha").path == str(image_root / "alpha.png")


def test_fingerprint_changes_when_the_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"one")
    source = FileSource(tmp_path, EXTENSIONS)
    first = source.locate("a.png").fingerprint
    (tmp_path / "b.png").write_bytes(b"two!")
    os.replace(tmp_path / "b.png", tmp_path / "a.png")
    assert source.locate("a.png").fingerprint != first


def test_removed_file_is_not_found_even_when_cached(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    source = FileSource(tmp_path, EXTENSIONS)
    source.locate("a.png")
    (tmp_path / "a.png").unlink()
    with pytest.raises(NotFound):
        source.locate("a.png")


@pytest.mark.parametrize(
    "identifier",
    [
        "../secret.png",
        "a/../../secret.png",
        "/etc/passwd",
        "./pattern.png",
        "a//b.png",
        ".hidden.png",
        "..",
        "sub/..",
        "..\\secret.png",
        "pattern.png/",
    ],
)
def test_traversal_forms_are_invalid(source: FileSource, identifier: str) -> None:
    with pytest.raises(InvalidRequest):
        source.locate(identifier)


@pytest.mark.parametrize("identifier", ["escape.png", "escape", "notes.txt", "notes", "missing.png", SUBFOLDER])
def test_outside_or_unservable_is_not_found(source: FileSource, identifier: str) -> None:
    with pytest.raises(NotFound):
        source.locate(identifier)


def test_symlink_inside_the_root_is_served(source: FileSource, image_root: Path) -> None:
    assert source.locate("inside-link.png").path == str(image_root / "pattern.png")


def test_symlinked_folder_leaving_the_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "x.png").write_bytes(b"x")
    os.symlink(outside, root / "door")
    with pytest.raises(NotFound):
        FileSource(root, EXTENSIONS).locate("door/x.png")


def test_listing_skips_hidden_and_unservable(source: FileSource) -> None:
    listed = source.list_identifiers()
    assert "pattern.tif" in listed and "notes.txt" not in listed
    assert unicodedata.normalize("NFC", f"{SUBFOLDER}/{NFC_NAME}") in [unicodedata.normalize("NFC", i) for i in listed]
