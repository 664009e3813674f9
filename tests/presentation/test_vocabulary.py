"""The museum's vocabulary: parsing, where its English appears, and that no Vietnamese is passed off as English.

Unit tests first (pure parsing), then the user's path: ``iiif-server manifests build`` writing a static
tree, and ``iiif-server serve`` picking up an edited vocabulary over HTTP without a restart.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import unicodedata
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from iiif_server.check import free_port, running_server
from iiif_server.presentation.build import Groups, ImageRef, build_manifest, collection_tree, part_of_refs
from iiif_server.presentation.exports import read_export
from iiif_server.presentation.records import ColumnMap, Problem, parse_records
from iiif_server.presentation.vocabulary import FIELDS, Vocabulary, parse_vocabulary
from tests.conftest import DEMO_EXPORT
from tests.presentation.test_build import BASE, PUBLISHER, as_json, record

DEMO_VOCABULARY = DEMO_EXPORT.parent / "vocabulary.csv"


def vocabulary(*rows: Mapping[str, object]) -> Vocabulary:
    parsed = parse_vocabulary(enumerate(rows, start=2))
    assert parsed.problems == []
    return parsed.vocabulary


def term(field: str, vi: str, en: str) -> dict[str, object]:
    return {"field": field, "vi": vi, "en": en}


# -- parsing -----------------------------------------------------------------------------------------------------


def test_a_term_is_translated_in_its_field_only() -> None:
    words = vocabulary(term("object_type", "hiện vật", "artefact"), term("material", "đá", "stone"))
    assert words.english("object_type", "hiện vật") == "artefact"
    assert words.english("site", "hiện vật") == ""
    assert words.english("material", "đá") == "stone"
    assert words.text("object_type", "hiện vật").language_map() == {"vi": ["hiện vật"], "en": ["artefact"]}
    assert words.text("site", "Kho").language_map() == {"vi": ["Kho"]}  # untranslated: Vietnamese only


def test_terms_match_whatever_their_case_form_or_spacing() -> None:
    nfd = unicodedata.normalize("NFD", "  Hiện   Vật ")
    words = vocabulary({" field ": " OBJECT_TYPE ", " vi ": nfd, " en ": " artefact  "})
    assert words.english("object_type", "hiện vật") == "artefact"
    assert words.english("object_type", "HIỆN VẬT") == "artefact"
    assert words.text("object_type", "HIỆN VẬT").vi == "HIỆN VẬT"  # the export's spelling is kept


def test_a_star_term_serves_every_field_and_a_field_term_wins() -> None:
    words = vocabulary(term("*", "Tháp Bà Ponagar", "Po Nagar Towers"), term("site", "Tháp Bà Ponagar", "Po Nagar"))
    assert words.english("site", "Tháp Bà Ponagar") == "Po Nagar"
    assert words.english("period", "Tháp Bà Ponagar") == "Po Nagar Towers"


def test_a_list_is_translated_term_by_term_only_when_every_term_is() -> None:
    words = vocabulary(
        term("material", "gạch", "brick"),
        term("material", "đá sa thạch", "sandstone"),
        term("material", "gạch; đá ong", "brick and laterite"),
    )
    assert words.english("material", "gạch; đá sa thạch") == "brick; sandstone"
    assert words.english("material", "gạch ;đá sa thạch;") == "brick; sandstone"
    assert words.english("material", "gạch; đá ong") == "brick and laterite"  # listed as a whole
    assert words.english("material", "gạch; gỗ") == ""  # no half translations
    assert words.english("material", ";") == ""


def test_a_term_without_english_is_not_translated_yet() -> None:
    parsed = parse_vocabulary([(2, term("object_type", "hiện vật", "")), (3, {"field": "site", "vi": "Kho"})])
    assert parsed.problems == []
    assert parsed.vocabulary.english("object_type", "hiện vật") == ""


def test_bad_rows_are_reported_by_file_and_row_and_skipped() -> None:
    rows = [
        (2, term("object_type", "hiện vật", "artefact")),
        (3, term("colour", "đỏ", "red")),
        (4, term("", "đỏ", "red")),
        (5, term("site", " ", "storehouse")),
        (6, term("object_type", "HIỆN VẬT", "object")),
        (7, term("object_type", "hiện vật", "artefact")),  # the same again: harmless
        (8, {"field": None, "vi": None, "en": None, None: ["extra"]}),
    ]
    parsed = parse_vocabulary(rows, file="vocabulary.csv")
    fields = "object_type, site, heritage_rank, period, material or * for any"
    assert [str(p) for p in parsed.problems] == [
        f"vocabulary.csv row 3: unknown field 'colour' (use {fields})",
        f"vocabulary.csv row 4: unknown field '' (use {fields})",
        "vocabulary.csv row 5: no Vietnamese term (column 'vi')",
        "vocabulary.csv row 6: 'HIỆN VẬT' is already translated on row 2 (as 'artefact')",
        f"vocabulary.csv row 8: unknown field '' (use {fields})",
    ]
    assert parsed.vocabulary.english("object_type", "hiện vật") == "artefact"  # the first is kept


def test_problem_text_names_another_file() -> None:
    assert str(Problem(4, "", "no Vietnamese term", "vocabulary.csv")) == "vocabulary.csv row 4: no Vietnamese term"


def test_the_demo_vocabulary_translates_every_term_of_the_demo_export() -> None:
    parsed = parse_vocabulary(read_export(DEMO_VOCABULARY).rows)
    assert parsed.problems == []
    records = parse_records(read_export(DEMO_EXPORT).rows, ColumnMap()).records
    terms = {(name, r.field(name)) for r in records for name in FIELDS if r.field(name)}
    assert len(terms) > 20
    assert [t for t in terms if not parsed.vocabulary.english(*t)] == []


# -- building ----------------------------------------------------------------------------------------------------


def test_every_label_built_from_a_term_uses_the_vocabulary() -> None:
    words = vocabulary(term("object_type", "hiện vật", "artefact"), term("material", "đá", "stone"))
    records = [record("A", material="đá", site="Kho"), record("B", material="gỗ", site="Kho")]
    groups = Groups(("object_type", "site"), records)
    refs = part_of_refs(groups, records[0], words)
    manifest = as_json(build_manifest(records[0], [ImageRef("a.tif", 10, 10)], BASE, PUBLISHER, refs, words))
    values = {pair["label"]["en"][0]: pair["value"] for pair in manifest["metadata"]}
    assert values["Object type"] == {"vi": ["hiện vật"], "en": ["artefact"]}
    assert values["Material"] == {"vi": ["đá"], "en": ["stone"]}
    assert values["Site"] == {"vi": ["Kho"]}
    assert [p["label"] for p in manifest["partOf"]] == [{"vi": ["hiện vật"], "en": ["artefact"]}, {"vi": ["Kho"]}]
    tree = collection_tree(records, groups, {"A": ImageRef("a.tif", 10, 10)}, BASE, PUBLISHER, words)
    assert as_json(tree["iiif/collections/object-type/hien-vat"])["label"] == {"vi": ["hiện vật"], "en": ["artefact"]}
    assert as_json(tree["iiif/collections/site/kho"])["label"] == {"vi": ["Kho"]}
    by_type = as_json(tree["iiif/collections/by-object-type"])
    assert by_type["items"][0]["label"] == {"vi": ["hiện vật"], "en": ["artefact"]}


# -- the user's path: the CLI and the server ---------------------------------------------------------------------


def language_maps(node: Any) -> Iterator[dict[str, list[str]]]:
    """Every language map in a document (any object whose keys include "vi" or "en")."""
    if isinstance(node, dict):
        if {"vi", "en"} & set(node) and all(isinstance(v, list) for v in node.values()):
            yield node
        for value in node.values():
            yield from language_maps(value)
    elif isinstance(node, list):
        for item in node:
            yield from language_maps(item)


def same_in_both(document: Any, allowed: set[str]) -> list[str]:
    """Values under "en" that repeat the Vietnamese, except those the vocabulary translates as themselves."""
    return [m["vi"][0] for m in language_maps(document) if m.get("en") == m.get("vi") and m["vi"][0] not in allowed]


def copy_demo(folder: Path) -> Path:
    """The demo export and its vocabulary in a folder of their own; returns the export."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEMO_VOCABULARY, folder / "vocabulary.csv")
    return Path(shutil.copy(DEMO_EXPORT, folder / "collection.csv"))


def run_build(*args: str, tmp_path: Path, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "IIIF_SERVER_CONFIG": os.devnull,
        "IIIF_SERVER_MANIFESTS_STATE_DIR": str(tmp_path / "state"),
        "IIIF_SERVER_CACHE_DISK_DIR": str(tmp_path / "cache"),
        **(env or {}),
    }
    command = [sys.executable, "-m", "iiif_server", "manifests", "build", *args]
    return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=300)


def test_the_static_tree_says_english_only_where_there_is_english(demo_root: Path, tmp_path: Path) -> None:
    export = copy_demo(tmp_path / "museum")
    out, base = tmp_path / "site", "https://iiif.museum.example"
    result = run_build(
        "--source", str(export), "--images", str(demo_root), "--out", str(out), "--base-url", base, "--validate",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "0 invalid" in result.stdout and "skipped 0 rows" in result.stdout
    same = {vi for (vi, en) in ((r["vi"], r["en"]) for _, r in read_export(DEMO_VOCABULARY).rows) if vi == en}
    assert same == {"Diên Khánh"}  # a name the vocabulary says is the same in English
    documents = {path: json.loads(path.read_text(encoding="utf-8")) for path in out.rglob("*") if path.is_file()}
    assert len(documents) > 19
    for path, document in documents.items():
        assert same_in_both(document, same) == [], path
    seal = documents[out / "iiif/manifests/KH-HV-0103"]  # no English in the export
    assert seal["label"] == {"vi": ["Ấn ngọc"]} and seal["requiredStatement"]["value"] == {
        "vi": ["Bảo tàng Di sản tỉnh"]
    }
    artefacts = documents[out / "iiif/collections/object-type/hien-vat"]
    assert artefacts["label"] == {"vi": ["hiện vật"], "en": ["artefact"]}
    shiva = documents[out / "iiif/manifests/KH-HV-0101"]
    assert {"vi": ["Kho Bảo tàng"], "en": ["Museum storehouse"]} in [p["label"] for p in shiva["partOf"]]
    towers = documents[out / "iiif/manifests/KH-DT-0001"]
    assert {"vi": ["gạch; đá sa thạch"], "en": ["brick; sandstone"]} in [p["value"] for p in towers["metadata"]]


def test_a_broken_vocabulary_is_one_clear_error_and_a_bad_row_a_listed_problem(demo_root: Path, tmp_path: Path) -> None:
    export = copy_demo(tmp_path / "museum")
    (tmp_path / "museum" / "vocabulary.csv").write_text("field,vi\nobject_type,hiện vật\n", encoding="utf-8")
    broken = run_build("--source", str(export), "--images", str(demo_root), tmp_path=tmp_path)
    assert broken.returncode == 1
    assert broken.stderr.strip().splitlines()[-1] == (
        f"Error: vocabulary {tmp_path / 'museum' / 'vocabulary.csv'} has no column(s) ['en'] "
        "(expected ['field', 'vi', 'en'])"
    )
    assert "Traceback" not in broken.stderr
    (tmp_path / "museum" / "vocabulary.csv").write_bytes(b"field,vi,en\nobject_type,hi\xe1\xbb")
    undecodable = run_build("--source", str(export), "--images", str(demo_root), tmp_path=tmp_path)
    assert undecodable.returncode == 1 and "cannot read vocabulary" in undecodable.stderr
    assert "Traceback" not in undecodable.stderr
    text = DEMO_VOCABULARY.read_text(encoding="utf-8") + "colour,đỏ,red\n"
    (tmp_path / "museum" / "vocabulary.csv").write_text(text, encoding="utf-8")
    lenient = run_build("--source", str(export), "--images", str(demo_root), tmp_path=tmp_path)
    assert lenient.returncode == 0, lenient.stderr
    row = len(text.splitlines())
    assert f"vocabulary.csv row {row}: unknown field 'colour'" in lenient.stdout
    assert "built 9 manifests" in lenient.stdout
    strict = run_build("--source", str(export), "--images", str(demo_root), "--strict", tmp_path=tmp_path)
    assert strict.returncode == 1


def test_a_configured_vocabulary_that_is_not_there_is_an_error(demo_root: Path, tmp_path: Path) -> None:
    """Beside the export the file is optional; a configured one that is missing is a mistake to report."""
    export = copy_demo(tmp_path / "museum")
    (export.parent / "vocabulary.csv").unlink()
    absent = run_build("--source", str(export), "--images", str(demo_root), tmp_path=tmp_path)
    assert absent.returncode == 0, absent.stderr
    missing = tmp_path / "words.csv"
    env = {"IIIF_SERVER_MANIFESTS_VOCABULARY": str(missing)}
    configured = run_build("--source", str(export), "--images", str(demo_root), tmp_path=tmp_path, env=env)
    assert configured.returncode == 1
    assert configured.stderr.strip().splitlines()[-1] == (
        f"Error: no vocabulary file at {missing} (see [manifests] vocabulary)"
    )


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def wait_for(url: str, check: Any, timeout: float = 60.0) -> dict[str, Any]:
    """The document at url once check(document) holds; fails with the last document after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        document = get_json(url)
        if check(document) or time.monotonic() > deadline:
            return document
        time.sleep(0.3)


def replace_file(path: Path, text: str) -> None:
    """As the docs advise: write a new file, then rename it over the old one."""
    new = path.with_name(path.name + ".new")
    new.write_text(text, encoding="utf-8")
    new.replace(path)


def test_a_vocabulary_edit_shows_up_in_the_served_labels_without_a_restart(demo_root: Path, tmp_path: Path) -> None:
    export = copy_demo(tmp_path / "museum")
    vocabulary_file = export.parent / "vocabulary.csv"
    env = {
        "IIIF_SERVER_MANIFESTS_SOURCE": str(export),
        "IIIF_SERVER_MANIFESTS_STATE_DIR": str(tmp_path / "state"),
        "IIIF_SERVER_MANIFESTS_CHECK_INTERVAL": "0",
        "IIIF_SERVER_CACHE_DISK_DIR": str(tmp_path / "cache"),
    }
    args = ["serve", "--images", str(demo_root), "--workers", "1"]
    with running_server(args, free_port(), env=env) as base:
        by_type, seal = f"{base}/iiif/collections/by-object-type", f"{base}/iiif/manifests/KH-HV-0103"

        def artefacts(document: dict[str, Any]) -> dict[str, list[str]]:
            return next(i["label"] for i in document["items"] if i["id"].endswith("/object-type/hien-vat"))

        assert artefacts(get_json(by_type)) == {"vi": ["hiện vật"], "en": ["artefact"]}
        assert get_json(seal)["partOf"][0]["label"] == {"vi": ["hiện vật"], "en": ["artefact"]}

        text = DEMO_VOCABULARY.read_text(encoding="utf-8")
        replace_file(vocabulary_file, text.replace("hiện vật,artefact", "hiện vật,museum object"))
        renamed = {"vi": ["hiện vật"], "en": ["museum object"]}
        assert artefacts(wait_for(by_type, lambda d: artefacts(d) == renamed)) == renamed
        assert get_json(f"{base}/iiif/collections/object-type/hien-vat")["label"] == renamed
        document = get_json(seal)
        assert document["partOf"][0]["label"] == renamed
        assert {"vi": ["hiện vật"], "en": ["museum object"]} in [p["value"] for p in document["metadata"]]

        replace_file(vocabulary_file, "field,vi\n")  # broken: the last good build is kept, no error page
        time.sleep(1)
        assert artefacts(get_json(by_type)) == renamed

        vocabulary_file.unlink()  # no vocabulary: Vietnamese only, never copied under "en"
        vietnamese = {"vi": ["hiện vật"]}
        assert artefacts(wait_for(by_type, lambda d: artefacts(d) == vietnamese)) == vietnamese
        assert get_json(seal)["partOf"][0]["label"] == vietnamese
        top = get_json(f"{base}/iiif/collections/top")
        assert same_in_both(top, set()) == [] and same_in_both(get_json(by_type), set()) == []


@pytest.mark.parametrize("setting", ["elsewhere/words.csv", "/absolute/words.csv"])
def test_a_configured_vocabulary_path_is_resolved_like_the_export(tmp_path: Path, setting: str) -> None:
    from iiif_server.config import load_settings

    config = tmp_path / "config.toml"
    config.write_text(f'[manifests]\nsource = "export.csv"\nvocabulary = "{setting}"\n', encoding="utf-8")
    settings = load_settings(config, environ={}).manifests
    assert settings.vocabulary_file == (tmp_path / setting if not setting.startswith("/") else Path(setting))
    default = load_settings(os.devnull, environ={"IIIF_SERVER_MANIFESTS_SOURCE": str(tmp_path / "x" / "e.csv")})
    assert default.manifests.vocabulary_file == tmp_path / "x" / "vocabulary.csv"
