"""Export files -> numbered rows -> Records: CSV the way museums save it, JSON in both shapes, unreadable files.

Row numbers are what staff look up: the spreadsheet row for CSV (header = row 1) and the 1-based position
for JSON.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest

from iiif_server.errors import ConfigError
from iiif_server.presentation.exports import Export, read_export
from iiif_server.presentation.records import (
    ColumnMap,
    Parsed,
    Problem,
    Record,
    Text,
    missing_columns,
    parse_records,
)

COLUMNS = ColumnMap()
DEMO_EXPORT = Path(__file__).resolve().parents[2] / "iiif_server" / "demo_collection" / "collection.csv"
HEADER = (
    "inventory_no,title_vi,title_en,object_type,heritage_rank,date,period,material,dimensions_cm,site,"
    "description_vi,description_en,access,rights,attribution_vi,attribution_en,images"
)

# The shape of a museum's export: quoted cells with commas, an empty English side, several images.
MUSEUM_CSV = f"""{HEADER}
KH-DT-0001,Tháp Bà Ponagar,Po Nagar Cham Towers,di tích kiến trúc,Di tích quốc gia,,thế kỷ VIII–XIII,gạch; đá sa thạch,,"Phường Vĩnh Phước, Nha Trang",Quần thể tháp Chăm trên đồi Cù Lao.,Cham temple complex on Cù Lao hill.,public,http://creativecommons.org/licenses/by/4.0/,Bảo tàng tỉnh Khánh Hòa,Khánh Hòa Provincial Museum,ponagar/thap-chinh.tif;ponagar/mat-dong.tif
KH-DT-0002,Thành cổ Diên Khánh,Diên Khánh Citadel,di tích lịch sử,Di tích quốc gia,1793,,đá ong; gạch,,"Thị trấn Diên Khánh",Thành lũy xây năm 1793.,Citadel walls built in 1793.,public,http://creativecommons.org/licenses/by/4.0/,Bảo tàng tỉnh Khánh Hòa,Khánh Hòa Provincial Museum,dien-khanh/cong-tien.tif
KH-HV-0103,Ấn ngọc,,hiện vật,,,triều Nguyễn,ngọc bích,10 x 10 x 6,Kho Bảo tàng,Ấn ngọc tròn.,,public,http://rightsstatements.org/vocab/InC-EDU/1.0/,Bảo tàng tỉnh Khánh Hòa,,an-ngoc.png
KH-TL-0001,Sắc phong,Royal decree,tư liệu,,1850-03-12,triều Nguyễn,giấy dó,,Kho Bảo tàng,Văn bản sắc phong nhiều trang.,Multi-page royal decree.,public,http://creativecommons.org/publicdomain/mark/1.0/,Bảo tàng tỉnh Khánh Hòa,Khánh Hòa Provincial Museum,tu-lieu/sac-phong/001.tif;tu-lieu/sac-phong/002.tif
"""  # noqa: E501


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def parse(path: Path, columns: ColumnMap = COLUMNS, extra_rights: tuple[str, ...] = ()) -> Parsed:
    export = read_export(path)
    assert missing_columns(export.header, columns) == []
    return parse_records(export.rows, columns, extra_rights)


def summary(parsed: Parsed) -> list[tuple[int, str]]:
    return [(r.row, r.inventory_number) for r in parsed.records]


# -- CSV ---------------------------------------------------------------------------------------------------------


def test_csv_rows_are_numbered_as_in_a_spreadsheet(tmp_path: Path) -> None:
    export = read_export(write(tmp_path / "export.csv", MUSEUM_CSV))
    assert isinstance(export, Export)
    assert export.header == tuple(HEADER.split(","))
    assert [(row, cells["inventory_no"]) for row, cells in export.rows] == [
        (2, "KH-DT-0001"),
        (3, "KH-DT-0002"),
        (4, "KH-HV-0103"),
        (5, "KH-TL-0001"),
    ]
    cells = export.rows[0][1]
    assert cells["site"] == "Phường Vĩnh Phước, Nha Trang"  # a quoted comma is not a separator
    assert cells["images"] == "ponagar/thap-chinh.tif;ponagar/mat-dong.tif"  # the reader does not split images


def test_a_museum_export_builds_every_record(tmp_path: Path) -> None:
    parsed = parse(write(tmp_path / "export.csv", MUSEUM_CSV))
    assert parsed.problems == []
    assert summary(parsed) == [(2, "KH-DT-0001"), (3, "KH-DT-0002"), (4, "KH-HV-0103"), (5, "KH-TL-0001")]
    ponagar, citadel, seal, decree = parsed.records
    assert ponagar.site == "Phường Vĩnh Phước, Nha Trang"
    assert ponagar.images == ("ponagar/thap-chinh.tif", "ponagar/mat-dong.tif")
    assert ponagar.nav_date is None and ponagar.period == "thế kỷ VIII–XIII"
    assert (citadel.date, citadel.nav_date) == ("1793", datetime(1793, 1, 1, tzinfo=UTC))
    assert seal.title.language_map() == {"vi": ["Ấn ngọc"]}  # no English: none made up
    assert seal.attribution.language_map() == {"vi": ["Bảo tàng tỉnh Khánh Hòa"]}
    assert seal.rights == "http://rightsstatements.org/vocab/InC-EDU/1.0/"
    assert decree.nav_date == datetime(1850, 3, 12, tzinfo=UTC)
    assert decree.images == ("tu-lieu/sac-phong/001.tif", "tu-lieu/sac-phong/002.tif")


def test_an_excel_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + MUSEUM_CSV.encode("utf-8"))
    export = read_export(path)
    assert export.header[0] == "inventory_no"
    assert missing_columns(export.header, COLUMNS) == []
    assert parse_records(export.rows, COLUMNS) == parse(write(tmp_path / "plain.csv", MUSEUM_CSV))


def test_windows_line_endings(tmp_path: Path) -> None:
    path = write(tmp_path / "crlf.csv", MUSEUM_CSV.replace("\n", "\r\n"))
    parsed = parse(path)
    assert parsed == parse(write(tmp_path / "lf.csv", MUSEUM_CSV))
    assert all("\r" not in image for record in parsed.records for image in record.images)


def test_blank_lines_are_skipped_but_still_counted(tmp_path: Path) -> None:
    text = "inventory_no,images,title_vi\nA,a.tif,Một\n\n,,\n  ,\t, \nB,b.tif,Hai\n\n"
    export = read_export(write(tmp_path / "export.csv", text))
    assert [(row, dict(cells)) for row, cells in export.rows] == [
        (2, {"inventory_no": "A", "images": "a.tif", "title_vi": "Một"}),
        (6, {"inventory_no": "B", "images": "b.tif", "title_vi": "Hai"}),
    ]
    parsed = parse_records(export.rows, COLUMNS)
    assert parsed.problems == []  # blank rows are not reported as "missing inventory number"
    assert summary(parsed) == [(2, "A"), (6, "B")]


def test_messy_headers_and_cells(tmp_path: Path) -> None:
    nfd = unicodedata.normalize("NFD", "hiện vật/KH-HV-0101 mặt trước.tif")
    text = (
        " inventory_no , title_vi ,title_en, date ,rights , images ,ghi_chu,\n"
        f"  KH-HV-0101 ,  Tượng   thần Shiva ,, 1850-03 , https://creativecommons.org/licenses/by/4.0 ,"
        f'" {nfd} ; ;{nfd};hien-vat/b.tif ",nội bộ,\n'
    )
    export = read_export(write(tmp_path / "export.csv", text))
    assert export.header == (" inventory_no ", " title_vi ", "title_en", " date ", "rights ", " images ", "ghi_chu", "")
    assert missing_columns(export.header, COLUMNS) == []
    parsed = parse_records(export.rows, COLUMNS)
    assert parsed.problems == []
    [record] = parsed.records
    assert record.row == 2
    assert record.inventory_number == "KH-HV-0101"
    assert record.title == Text("Tượng thần Shiva", "")
    assert record.title.language_map() == {"vi": ["Tượng thần Shiva"]}
    assert (record.date, record.nav_date) == ("1850-03", datetime(1850, 3, 1, tzinfo=UTC))
    assert record.rights == "http://creativecommons.org/licenses/by/4.0/"
    assert record.images == ("hiện vật/KH-HV-0101 mặt trước.tif", "hien-vat/b.tif")
    assert all(unicodedata.is_normalized("NFC", image) for image in record.images)


def test_short_and_long_rows(tmp_path: Path) -> None:
    """A short row's missing cells are empty; a long row's extra cells are ignored."""
    text = "inventory_no,images,title_vi,title_en\nA,a.tif\nB,b.tif,Hai,Two,surplus,cells\n"
    export = read_export(write(tmp_path / "export.csv", text))
    assert export.rows[0] == (2, {"inventory_no": "A", "images": "a.tif", "title_vi": None, "title_en": None})
    row, cells = export.rows[1]
    named = {key: value for key, value in cells.items() if key is not None}  # DictReader keeps surplus under None
    assert (row, named) == (3, {"inventory_no": "B", "images": "b.tif", "title_vi": "Hai", "title_en": "Two"})
    parsed = parse_records(export.rows, COLUMNS)
    assert parsed.problems == []
    assert [(r.row, r.title) for r in parsed.records] == [(2, Text()), (3, Text("Hai", "Two"))]


def test_bad_rows_in_a_csv_are_reported_by_spreadsheet_row(tmp_path: Path) -> None:
    text = (
        "inventory_no,date,rights,images\n"
        "KH-1,1850,,a.tif\n"  # 2
        ",1850,,b.tif\n"  # 3 missing inventory number
        "KH-1,,,c.tif\n"  # 4 duplicate of row 2
        "KH-2,,,\n"  # 5 no images
        "KH-3,,http://example.org/rights,d.tif\n"  # 6 unknown rights
        "KH-4,31/02/1990,,e.tif\n"  # 7
        "KH-5,1850-13-01,,f.tif\n"  # 8
        "\n"  # 9 blank
        "KH-6,1850-02-30,,g.tif\n"  # 10
        "KH-7,thế kỷ X,,h.tif\n"  # 11
        "KH/8,,,i.tif\n"  # 12
        "KH-9,1850-03,https://rightsstatements.org/vocab/NoC-US/1.0,j.tif\n"  # 13
    )
    parsed = parse(write(tmp_path / "export.csv", text))
    assert [str(p) for p in parsed.problems] == [
        "row 3: missing inventory number (column 'inventory_no')",
        "row 4 (KH-1): duplicate inventory number (first on row 2)",
        "row 5 (KH-2): no image files listed (column 'images')",
        "row 6 (KH-3): unknown rights URI 'http://example.org/rights' "
        "(use a Creative Commons or RightsStatements.org URI)",
        "row 7 (KH-4): date '31/02/1990' is not a real date (1990-02 has 28 days)",
        "row 8 (KH-5): date '1850-13-01' is not a real date (there is no month 13)",
        "row 10 (KH-6): date '1850-02-30' is not a real date (1850-02 has 28 days)",
        "row 11 (KH-7): malformed date 'thế kỷ X' "
        "(expected YYYY, YYYY-MM, YYYY-MM-DD, DD/MM/YYYY, MM/YYYY or năm YYYY)",
        "row 12 (KH/8): inventory number must not contain '/'",
    ]
    assert summary(parsed) == [(2, "KH-1"), (13, "KH-9")]
    assert parsed.records[1].rights == "http://rightsstatements.org/vocab/NoC-US/1.0/"
    assert parsed.records[1].images == ("j.tif",)


def test_a_renamed_column_map_over_a_csv(tmp_path: Path) -> None:
    columns = ColumnMap(inventory_number="Số hiệu", title_vi="Tên", title_en="Name", date="Năm", images="Ảnh")
    text = "Số hiệu,Tên,Name,Năm,Ảnh,inventory_no\nBT-1,Bình gốm,Jar,1850,gom/1.jpg; gom/2.jpg,IGNORED\n"
    path = write(tmp_path / "export.csv", text)
    parsed = parse(path, columns)
    assert parsed.problems == []
    [record] = parsed.records
    assert (record.row, record.inventory_number, record.title) == (2, "BT-1", Text("Bình gốm", "Jar"))
    assert record.nav_date == datetime(1850, 1, 1, tzinfo=UTC)
    assert record.images == ("gom/1.jpg", "gom/2.jpg")
    # The same file under the default map lacks the images column.
    assert missing_columns(read_export(path).header, COLUMNS) == ["images"]


def test_missing_required_columns_are_reported_from_the_header(tmp_path: Path) -> None:
    export = read_export(write(tmp_path / "export.csv", "title_vi,title_en\nBình,Jar\n"))
    assert export.header == ("title_vi", "title_en")
    assert missing_columns(export.header, COLUMNS) == ["inventory_no", "images"]


def test_an_empty_csv_has_no_header_and_no_rows(tmp_path: Path) -> None:
    export = read_export(write(tmp_path / "empty.csv", ""))
    assert export == Export((), [])
    assert missing_columns(export.header, COLUMNS) == ["inventory_no", "images"]


def test_a_header_only_csv_has_no_rows(tmp_path: Path) -> None:
    export = read_export(write(tmp_path / "header.csv", HEADER + "\n"))
    assert export.header == tuple(HEADER.split(","))
    assert export.rows == []


def test_any_other_suffix_is_read_as_csv(tmp_path: Path) -> None:
    export = read_export(write(tmp_path / "export.txt", "inventory_no,images\nA,a.tif\n"))
    assert export.rows == [(2, {"inventory_no": "A", "images": "a.tif"})]


def test_a_quoted_cell_over_several_lines_is_one_cell(tmp_path: Path) -> None:
    text = 'inventory_no,description_vi,images\nA,"Dòng một\nDòng hai",a.tif\n'
    export = read_export(write(tmp_path / "export.csv", text))
    assert [dict(cells) for _, cells in export.rows] == [
        {"inventory_no": "A", "description_vi": "Dòng một\nDòng hai", "images": "a.tif"}
    ]
    [record] = parse_records(export.rows, COLUMNS).records
    assert record.description.vi == "Dòng một Dòng hai"


def test_rows_after_a_multi_line_cell_keep_their_spreadsheet_numbers(tmp_path: Path) -> None:
    text = 'inventory_no,description_vi,images\nA,"Dòng một\nDòng hai",a.tif\nB,x,b.tif\n\nC,y,c.tif\n'
    export = read_export(write(tmp_path / "export.csv", text))
    # In a spreadsheet: header 1, A 2 (one row despite two lines), B 3, blank 4, C 5.
    assert [(row, cells["inventory_no"]) for row, cells in export.rows] == [(2, "A"), (3, "B"), (5, "C")]


# -- JSON --------------------------------------------------------------------------------------------------------

JSON_RECORDS: list[object] = [
    {
        "inventory_no": "KH-DT-0002",
        "title_vi": "Thành cổ Diên Khánh",
        "title_en": "Diên Khánh Citadel",
        "date": 1793,  # a number, as JSON exports write years
        "rights": "https://creativecommons.org/licenses/by/4.0",
        "images": ["dien-khanh/cong-tien.tif", " dien-khanh/cong-hau.tif ", "", "dien-khanh/cong-tien.tif"],
    },
    {
        "inventory_no": "KH-TL-0001",
        "title_vi": "Sắc phong",
        "title_en": None,
        "date": "1850-03-12",
        "images": "tu-lieu/001.tif; tu-lieu/002.tif",  # a string works too
        "extra": {"nested": True},
    },
]


@pytest.mark.parametrize("shape", ["list", "records"])
def test_json_export_in_both_shapes(tmp_path: Path, shape: str) -> None:
    data = JSON_RECORDS if shape == "list" else {"records": JSON_RECORDS, "exported": "2025-01-01"}
    export = read_export(write_json(tmp_path / "export.json", data))
    assert export.header == ("inventory_no", "title_vi", "title_en", "date", "rights", "images", "extra")
    assert [row for row, _ in export.rows] == [1, 2]
    assert export.rows[0][1]["date"] == 1793  # values stay JSON values until parse_records cleans them
    parsed = parse_records(export.rows, COLUMNS)
    assert parsed.problems == []
    citadel, decree = parsed.records
    assert (citadel.row, citadel.inventory_number) == (1, "KH-DT-0002")
    assert (citadel.date, citadel.nav_date) == ("1793", datetime(1793, 1, 1, tzinfo=UTC))
    assert citadel.rights == "http://creativecommons.org/licenses/by/4.0/"
    assert citadel.images == ("dien-khanh/cong-tien.tif", "dien-khanh/cong-hau.tif")
    assert (decree.row, decree.inventory_number) == (2, "KH-TL-0001")
    assert decree.title == Text("Sắc phong", "")
    assert decree.nav_date == datetime(1850, 3, 12, tzinfo=UTC)
    assert decree.images == ("tu-lieu/001.tif", "tu-lieu/002.tif")


def test_json_numbers_as_values(tmp_path: Path) -> None:
    data = [{"inventory_no": 1001, "date": 1850, "dimensions_cm": 63.5, "images": ["a.tif", 2]}]
    [record] = parse(write_json(tmp_path / "export.json", data)).records
    assert (record.inventory_number, record.date, record.dimensions) == ("1001", "1850", "63.5")
    assert record.nav_date == datetime(1850, 1, 1, tzinfo=UTC)
    assert record.images == ("a.tif", "2")


def test_json_non_objects_become_rows_with_a_problem(tmp_path: Path) -> None:
    data = [
        {"inventory_no": "A", "images": ["a.tif"]},
        "KH-2",
        None,
        ["KH-3", "c.tif"],
        {"inventory_no": "B", "images": "b.tif"},
        42,
    ]
    export = read_export(write_json(tmp_path / "export.json", data))
    assert export.header == ("inventory_no", "images")
    assert [(row, dict(cells)) for row, cells in export.rows][1:4] == [(2, {}), (3, {}), (4, {})]
    parsed = parse_records(export.rows, COLUMNS)
    assert summary(parsed) == [(1, "A"), (5, "B")]
    assert parsed.problems == [
        Problem(row, "", "missing inventory number (column 'inventory_no')") for row in (2, 3, 4, 6)
    ]


def test_bad_json_records_are_reported_by_position(tmp_path: Path) -> None:
    data = {
        "records": [
            {"inventory_no": "KH-1", "images": ["a.tif"]},
            {"inventory_no": "KH-1", "images": ["b.tif"]},
            {"inventory_no": "KH-2", "images": []},
            {"inventory_no": "KH-3", "images": ["c.tif"], "date": "31/02/1990"},
            {"inventory_no": "KH-4", "images": ["d.tif"], "rights": "http://example.org/"},
            {"inventory_no": "KH/5", "images": ["e.tif"]},
            {"inventory_no": "KH-6", "images": ["f.tif"], "date": 18500},
            {"inventory_no": "KH-7", "images": ["g.tif"], "date": "1850-02"},
        ]
    }
    parsed = parse(write_json(tmp_path / "export.json", data))
    assert [str(p) for p in parsed.problems] == [
        "row 2 (KH-1): duplicate inventory number (first on row 1)",
        "row 3 (KH-2): no image files listed (column 'images')",
        "row 4 (KH-3): date '31/02/1990' is not a real date (1990-02 has 28 days)",
        "row 5 (KH-4): unknown rights URI 'http://example.org/' (use a Creative Commons or RightsStatements.org URI)",
        "row 6 (KH/5): inventory number must not contain '/'",
        "row 7 (KH-6): malformed date '18500' (expected YYYY, YYYY-MM, YYYY-MM-DD, DD/MM/YYYY, MM/YYYY or năm YYYY)",
    ]
    assert summary(parsed) == [(1, "KH-1"), (8, "KH-7")]


def test_json_with_a_byte_order_mark_and_nfd(tmp_path: Path) -> None:
    nfd = unicodedata.normalize("NFD", "hiện vật/ảnh.jpg")
    path = tmp_path / "export.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([{" inventory_no ": " A ", "images": [nfd]}]).encode("utf-8"))
    export = read_export(path)
    assert missing_columns(export.header, COLUMNS) == []
    [record] = parse_records(export.rows, COLUMNS).records
    assert (record.row, record.inventory_number, record.images) == (1, "A", ("hiện vật/ảnh.jpg",))


def test_json_suffix_is_case_insensitive(tmp_path: Path) -> None:
    export = read_export(write_json(tmp_path / "EXPORT.JSON", [{"inventory_no": "A", "images": "a.tif"}]))
    assert export.rows == [(1, {"inventory_no": "A", "images": "a.tif"})]


def test_an_empty_json_list_has_no_rows(tmp_path: Path) -> None:
    assert read_export(write_json(tmp_path / "export.json", [])) == Export((), [])
    assert read_export(write_json(tmp_path / "wrapped.json", {"records": []})) == Export((), [])


def demo_as_json(csv_path: Path) -> list[dict[str, object]]:
    """The demo CSV the way a JSON export writes it: images as lists, year-only dates as numbers."""
    items: list[dict[str, object]] = []
    with csv_path.open(encoding="utf-8-sig", newline="") as handle:
        for cells in csv.DictReader(handle):
            item: dict[str, object] = dict(cells)
            item["images"] = [part for part in cells["images"].split(";") if part]
            if cells["date"].isdigit():
                item["date"] = int(cells["date"])
            items.append(item)
    return items


@pytest.mark.parametrize("shape", ["list", "records"])
def test_the_demo_collection_as_json_gives_the_same_records(tmp_path: Path, shape: str) -> None:
    from_csv = parse(DEMO_EXPORT)
    assert from_csv.problems == []  # the demo is clean
    items = demo_as_json(DEMO_EXPORT)
    assert len(from_csv.records) == len(items) > 0
    assert any(isinstance(item["date"], int) for item in items)  # the demo has a numeric year (1793)
    from_json = parse(write_json(tmp_path / "demo.json", items if shape == "list" else {"records": items}))
    assert from_json.problems == []
    # Blank-line-free CSV: spreadsheet row = JSON position + 1 (the header); every other field is equal.
    assert [r.row for r in from_csv.records] == [r.row + 1 for r in from_json.records]
    assert [r.row for r in from_json.records] == list(range(1, len(items) + 1))
    assert [dataclasses.replace(r, row=0) for r in from_csv.records] == [
        dataclasses.replace(r, row=0) for r in from_json.records
    ]


def test_the_demo_collection_records(tmp_path: Path) -> None:
    """Spot checks that the demo exercises what the parser handles: fallbacks, several images, dates, rights."""
    records: dict[str, Record] = {r.inventory_number: r for r in parse(DEMO_EXPORT).records}
    citadel = records["KH-DT-0002"]
    assert (citadel.date, citadel.nav_date) == ("1793", datetime(1793, 1, 1, tzinfo=UTC))
    seal = records["KH-HV-0103"]
    assert seal.title.language_map() == {"vi": ["Ấn ngọc"]}
    assert records["KH-HV-0101"].images == (
        "hien-vat/KH-HV-0101 mặt trước.tif",
        "hien-vat/KH-HV-0101 mặt sau.tif",
        "hien-vat/KH-HV-0101 mặt bên.tif",
    )
    assert records["KH-HV-0104"].access == "restricted"


# -- unreadable files --------------------------------------------------------------------------------------------


def raises_config_error(path: Path, *fragments: str) -> str:
    with pytest.raises(ConfigError) as raised:
        read_export(path)
    message = str(raised.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    return message


def test_a_missing_file(tmp_path: Path) -> None:
    raises_config_error(tmp_path / "nowhere.csv", "cannot read collection export", "No such file")
    raises_config_error(tmp_path / "nowhere.json", "cannot read collection export", "No such file")


def test_a_folder_instead_of_a_file(tmp_path: Path) -> None:
    (tmp_path / "export.csv").mkdir()
    raises_config_error(tmp_path / "export.csv", "cannot read collection export")


@pytest.mark.parametrize(("encoding", "title"), [("cp1258", "Đá"), ("utf-16", "Bình gốm"), ("latin-1", "Bình")])
def test_an_export_not_in_utf8(tmp_path: Path, encoding: str, title: str) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(f"inventory_no,title_vi,images\nKH-1,{title},a.tif\n".encode(encoding))
    raises_config_error(path, "cannot read collection export", "codec can't decode")


def test_json_not_in_utf8(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_bytes('[{"inventory_no": "KH-1", "title_vi": "Bình"}]'.encode("utf-16"))
    raises_config_error(path, "cannot read collection export")


def test_a_csv_cell_over_the_field_limit(tmp_path: Path) -> None:
    path = write(tmp_path / "export.csv", "inventory_no,images\nKH-1," + "x" * 200_000 + "\n")
    raises_config_error(path, "cannot read collection export", "field larger than field limit")


@pytest.mark.parametrize("text", ["", "[{", "{'records': []}", "[1, 2,]", "records"])
def test_invalid_json(tmp_path: Path, text: str) -> None:
    raises_config_error(write(tmp_path / "export.json", text), "cannot read collection export")


@pytest.mark.parametrize(
    "data",
    [{"items": []}, {"records": {"inventory_no": "A"}}, {"records": None}, "records", 42, None, True],
)
def test_json_of_the_wrong_shape(tmp_path: Path, data: object) -> None:
    message = raises_config_error(write_json(tmp_path / "export.json", data))
    assert (
        message == f"collection export {tmp_path / 'export.json'}: expected a list of records or {{'records': [...]}}"
    )
