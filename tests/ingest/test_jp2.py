"""JPEG 2000 scans: decoded strip by strip through OpenJPEG into libvips, pixels and ICC profile kept."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import pyvips
from PIL import Image as PILImage

from iiif_server.ingest.convert import ConvertError, MasterOptions, to_master
from iiif_server.ingest.jp2 import colr_icc, open_jp2


def pattern(width: int, height: int, bands: int = 3, bits: int = 8) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    top = 255 if bits == 8 else 65535
    planes = [(x * top // max(1, width - 1)), (y * top // max(1, height - 1)), ((x + y) % (top + 1))]
    array = np.stack(planes[:bands], axis=-1).astype(np.uint8 if bits == 8 else np.uint16)
    return array if bands > 1 else array[:, :, 0]


def write_jp2(path: Path, array: np.ndarray, tile: tuple[int, int] | None = None) -> Path:
    """Lossless JPEG 2000 (Pillow's OpenJPEG), tiled or not."""
    mode = {2: "L" if array.dtype == np.uint8 else "I;16", 3: "RGB"}[array.ndim]
    options = {"tile_size": tile} if tile else {}
    if mode == "I;16":
        PILImage.frombytes(mode, (array.shape[1], array.shape[0]), array.astype("<u2").tobytes()).save(path, **options)
    else:
        PILImage.fromarray(array, mode).save(path, **options)
    return path


def as_array(image: pyvips.Image) -> np.ndarray:
    return np.ndarray(
        buffer=image.write_to_memory(),
        dtype={"uchar": np.uint8, "ushort": np.uint16}[image.format],
        shape=[image.height, image.width, image.bands],
    )


@pytest.mark.parametrize("tile", [None, (256, 256)])
def test_rgb_jp2_decodes_exactly(tmp_path: Path, tile: tuple[int, int] | None) -> None:
    source = pattern(1500, 1100)
    decoded = open_jp2(write_jp2(tmp_path / "scan.jp2", source, tile))
    assert (decoded.width, decoded.height, decoded.bands, decoded.format) == (1500, 1100, 3, "uchar")
    assert np.array_equal(as_array(decoded), source)  # lossless in, identical out, strip after strip


def test_sixteen_bit_grey_jp2(tmp_path: Path) -> None:
    source = pattern(700, 500, bands=1, bits=16)
    decoded = open_jp2(write_jp2(tmp_path / "grey16.jp2", source))
    assert (decoded.bands, decoded.format) == (1, "ushort")
    assert np.array_equal(as_array(decoded)[:, :, 0], source)


def test_jp2_becomes_a_master(tmp_path: Path) -> None:
    source = pattern(2000, 1200)
    converted = to_master(write_jp2(tmp_path / "scan.jp2", source), tmp_path / "m.tif", MasterOptions())
    assert converted.source_format == "jp2 (OpenJPEG)"
    master = pyvips.Image.new_from_file(str(tmp_path / "m.tif"))
    assert (master.width, master.height, master.get("tile-width"), master.get("n-pages")) == (2000, 1200, 256, 4)
    assert np.abs(as_array(master).astype(int) - source.astype(int)).mean() < 2  # JPEG Q90 noise only


def test_icc_profile_in_the_colr_box_is_honoured(tmp_path: Path) -> None:
    glymur = pytest.importorskip("glymur")  # a dependency: never skipped in practice
    from glymur import jp2box

    p3 = pyvips.Image.black(1, 1).copy(interpretation="srgb").bandjoin([0, 0]).icc_transform("p3")
    profile = p3.get("icc-profile-data")
    plain = write_jp2(tmp_path / "plain.jp2", pattern(600, 400))
    boxes = glymur.Jp2k(str(plain)).box
    header = next(box for box in boxes if box.box_id == "jp2h")
    for index, box in enumerate(header.box):
        if box.box_id == "colr":
            header.box[index] = jp2box.ColourSpecificationBox(
                method=glymur.core.RESTRICTED_ICC_PROFILE, precedence=0, icc_profile=profile
            )
    tagged = tmp_path / "p3.jp2"
    glymur.Jp2k(str(plain)).wrap(str(tagged), boxes=boxes)
    assert colr_icc(tagged) == profile
    decoded = open_jp2(tagged)
    assert decoded.get("icc-profile-data") == profile
    to_master(tagged, tmp_path / "m.tif", MasterOptions())
    master = as_array(pyvips.Image.new_from_file(str(tmp_path / "m.tif"))).astype(int)
    reference = as_array(decoded.icc_transform("srgb", embedded=True, intent="relative")).astype(int)
    assert np.abs(master - reference).mean() < 1.5
    assert np.abs(master - pattern(600, 400).astype(int)).mean() > 3  # not the profile-less pixels


@pytest.mark.parametrize("content", [b"", b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"garbage" * 20])
def test_broken_jp2_is_a_convert_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.jp2"
    path.write_bytes(content)
    with pytest.raises(ConvertError, match="JPEG 2000"):
        to_master(path, tmp_path / "m.tif", MasterOptions())


def test_truncated_jp2_is_a_convert_error(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    PILImage.fromarray(pattern(800, 600), "RGB").save(buffer, format="JPEG2000")
    path = tmp_path / "cut.jp2"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ConvertError):
        to_master(path, tmp_path / "m.tif", MasterOptions())
