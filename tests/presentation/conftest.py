"""A small collection: an image root with synthesised scans and an export naming them."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvips
from flask import Flask
from flask.testing import FlaskClient

from iiif_server import create_app
from iiif_server.config import Settings

HEADER = [
    "inventory_no", "title_vi", "title_en", "object_type", "heritage_rank", "date", "period", "material",
    "dimensions_cm", "site", "description_vi", "description_en", "access", "rights", "attribution_vi",
    "attribution_en", "images",
]  # fmt: skip
ROWS = [
    ["KH-DT-0001", "Tháp Bà Ponagar", "Po Nagar Cham Towers", "di tích kiến trúc", "Di tích quốc gia", "",
     "thế kỷ VIII–XIII", "gạch; đá sa thạch", "", "Tháp Bà Ponagar", "Quần thể tháp Chăm.", "Cham temple complex.",
     "public", "http://creativecommons.org/licenses/by/4.0/", "Bảo tàng", "Museum",
     "ponagar/tháp chính.tif;ponagar/mặt đông.jpg"],
    ["KH-HV-0102", "Bình gốm", "", "hiện vật", "", "1793", "", "gốm", "24 x 18", "Kho Bảo tàng",
     "Bình gốm thời tiền sử.", "", "public", "http://creativecommons.org/publicdomain/mark/1.0/", "", "",
     "hien-vat/binh.png"],
    ["KH-HV-0103", "Bia đá", "Stele", "hiện vật", "Bảo vật quốc gia", "", "thế kỷ IX", "đá", "150 x 60 x 20",
     "Tháp Bà Ponagar", "", "", "internal", "http://rightsstatements.org/vocab/InC/1.0/", "Bảo tàng", "Museum",
     "hien-vat/bia.tif"],
    ["KH-TL-0001", "Sắc phong", "Royal decree", "tư liệu", "", "1850-03-12", "triều Nguyễn", "giấy dó", "",
     "Kho Bảo tàng", "Văn bản nhiều trang.", "Multi-page decree.", "public",
     "http://creativecommons.org/publicdomain/mark/1.0/", "Bảo tàng", "Museum",
     "tu-lieu/001.tif;tu-lieu/002.tif;tu-lieu/003.tif"],
]  # fmt: skip
SIZES = {
    "ponagar/tháp chính.tif": (1200, 1600),
    "ponagar/mặt đông.jpg": (900, 600),
    "hien-vat/binh.png": (500, 700),
    "hien-vat/bia.tif": (400, 800),
    "tu-lieu/001.tif": (800, 1100),
    "tu-lieu/002.tif": (800, 1100),
    "tu-lieu/003.tif": (810, 1120),
}


def write_image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = (pyvips.Image.xyz(width, height)[0] % 256).cast("uchar").bandjoin([90, 160]).copy(interpretation="srgb")
    if path.suffix == ".tif":
        image.tiffsave(str(path), tile=True, pyramid=True, compression="jpeg", tile_width=256, tile_height=256)
    else:
        image.write_to_file(str(path))


def write_export(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """tmp_path with images/ and export.csv (a fresh copy per test: tests change them)."""
    for name, (width, height) in SIZES.items():
        write_image(tmp_path / "images" / name, width, height)
    write_export(tmp_path / "export.csv", ROWS)
    return tmp_path


@pytest.fixture
def collection_settings(collection: Path) -> Settings:
    return Settings().replace(
        images={"root": collection / "images"},
        cache={"disk_dir": collection / "cache", "memory_mb": 0},
        manifests={"source": collection / "export.csv", "state_dir": collection / "state", "check_interval": 0},
    )


@pytest.fixture
def collection_app(collection_settings: Settings) -> Flask:
    return create_app(collection_settings)


@pytest.fixture
def collection_client(collection_app: Flask) -> Iterator[FlaskClient]:
    with collection_app.test_client() as test_client:
        yield test_client
