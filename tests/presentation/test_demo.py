"""The demo collection end to end: every document valid, CSV and JSON alike, the CLI and the static tree."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from iiif_server.config import Settings
from iiif_server.presentation.catalogue import Snapshot
from iiif_server.presentation.validate import problems
from iiif_server.services import Services
from tests.conftest import DEMO_EXPORT

BASE = "https://iiif.museum.example/prefix"


DEMO_VOCABULARY = DEMO_EXPORT.parent / "vocabulary.csv"  # found beside the export by default


def demo_settings(demo_root: Path, state: Path, source: Path = DEMO_EXPORT) -> Settings:
    return Settings().replace(
        images={"root": demo_root},
        cache={"disk_dir": state / "cache", "memory_mb": 0},
        manifests={"source": source, "state_dir": state, "vocabulary": str(DEMO_VOCABULARY)},
    )


@pytest.fixture(scope="module")
def demo_snapshot(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    return Services(demo_settings(demo_root, tmp_path_factory.mktemp("state"))).catalogue.build()


def test_every_demo_document_validates_against_the_schema(demo_snapshot: Snapshot) -> None:
    assert demo_snapshot.problems == []
    assert demo_snapshot.withheld == []  # the restricted stele is published too (issue 12)
    assert demo_snapshot.manifests == 9 and demo_snapshot.collections >= 8
    for document in demo_snapshot.documents.values():
        data = json.loads(document.render(BASE))
        assert problems(data) == [], document.path
        assert data["id"] == f"{BASE}/{document.path}"


def test_demo_covers_what_a_museum_publishes(demo_snapshot: Snapshot) -> None:
    def manifest(inventory: str) -> dict:
        return json.loads(demo_snapshot.documents[f"iiif/manifests/{inventory}"].render(BASE))

    assert manifest("KH-TL-0001")["behavior"] == ["paged"] and len(manifest("KH-TL-0001")["items"]) == 4
    assert len(manifest("KH-HV-0101")["items"]) == 3  # several views of one artefact
    assert len(manifest("KH-PVT-0001")["items"]) == 3  # intangible heritage: photographs
    seal = manifest("KH-HV-0103")  # no English in the export: Vietnamese only, never passed off as English
    assert seal["label"] == {"vi": ["Ấn ngọc"]}
    assert seal["summary"] == {"vi": ["Ấn ngọc tròn; chưa có bản dịch tiếng Anh."]}
    assert seal["requiredStatement"]["value"] == {"vi": ["Bảo tàng Di sản tỉnh"]}
    labels = {pair["label"]["en"][0]: pair["value"] for pair in seal["metadata"]}
    assert labels["Inventory number"] == {"none": ["KH-HV-0103"]}
    assert labels["Dimensions (cm)"] == {"none": ["10 × 10 × 6"]}
    assert labels["Object type"] == {"vi": ["hiện vật"], "en": ["artefact"]}  # the demo's vocabulary
    assert labels["Material"] == {"vi": ["ngọc bích"], "en": ["jade"]}
    assert {"id": f"{BASE}/iiif/collections/object-type/hien-vat", "type": "Collection"}.items() <= dict(
        seal["partOf"][0]
    ).items()
    assert seal["partOf"][0]["label"] == {"vi": ["hiện vật"], "en": ["artefact"]}
    stele = manifest("KH-HV-0104")  # the restricted treasure: published, its login services on its images
    assert stele["@context"][0] == "http://iiif.io/api/auth/2/context.json"
    assert len(stele["items"]) == 2 and stele["thumbnail"][0]["width"] <= 400 and "service" not in stele["thumbnail"][0]
    for canvas, face in zip(stele["items"], ("recto", "verso"), strict=True):
        service = canvas["items"][0]["items"][0]["body"]["service"][0]
        assert service["id"] == f"{BASE}/iiif/3/hien-vat%2FKH-HV-0104-{face}.tif"
        assert [s.get("type") or s.get("@type") for s in service["service"]] == [
            "AuthProbeService2",
            "AuthCookieService1",
        ]
    assert "liên hệ bảo tàng" in stele["requiredStatement"]["value"]["vi"][1]
    drum = manifest("KH-HV-0001")
    assert (drum["items"][0]["width"], drum["items"][0]["height"]) == (10240, 8192)
    assert drum["provider"][0]["homepage"][0]["id"] == "https://heritage.example.org/"
    assert drum["homepage"][0]["id"] == f"{BASE}/items/KH-HV-0001"  # the catalogue's item page


def test_the_same_records_as_json_build_the_same_documents(
    demo_root: Path, demo_snapshot: Snapshot, tmp_path: Path
) -> None:
    with DEMO_EXPORT.open(encoding="utf-8", newline="") as handle:
        records = list(csv.DictReader(handle))
    for record in records:
        record["images"] = record["images"].split(";")  # JSON may carry a real list
    export = tmp_path / "export.json"
    export.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    snapshot = Services(demo_settings(demo_root, tmp_path / "state", export)).catalogue.build()
    assert {p: d.etag for p, d in snapshot.documents.items()} == {p: d.etag for p, d in demo_snapshot.documents.items()}


def test_history_survives_a_restart(demo_root: Path, tmp_path: Path) -> None:
    settings = demo_settings(demo_root, tmp_path / "state")
    first = Services(settings).catalogue
    first.build()
    assert first.changes is not None
    created = first.changes.count()
    assert created == 20  # 9 manifests + 11 collections
    again = Services(settings).catalogue  # a new process: same state directory
    again.build()
    assert again.changes is not None and again.changes.count() == created


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "iiif_server", "manifests", "build", *args],
        env={**os.environ, "IIIF_SERVER_CONFIG": os.devnull, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_writes_the_static_tree_and_reports(demo_root: Path, tmp_path: Path) -> None:
    env = {
        "IIIF_SERVER_MANIFESTS_STATE_DIR": str(tmp_path / "state"),
        "IIIF_SERVER_CACHE_DISK_DIR": str(tmp_path / "cache"),
        "IIIF_SERVER_MANIFESTS_SOURCE": str(DEMO_EXPORT),
    }
    out = tmp_path / "site"
    result = run_cli("--images", str(demo_root), "--out", str(out), "--base-url", BASE + "/", "--validate", env=env)
    assert result.returncode == 0, result.stderr
    assert "built 9 manifests and 11 collections" in result.stdout
    assert "withheld" not in result.stdout  # the restricted stele is published
    assert "20 Create" in result.stdout
    assert "0 invalid" in result.stdout
    manifest = json.loads((out / "iiif/manifests/KH-HV-0101").read_text(encoding="utf-8"))
    assert manifest["id"] == f"{BASE}/iiif/manifests/KH-HV-0101"
    top = json.loads((out / "iiif/collections/top").read_text(encoding="utf-8"))
    assert top["items"][0]["id"] == f"{BASE}/iiif/collections/by-object-type"
    stream = json.loads((out / "iiif/activity/all-changes").read_text(encoding="utf-8"))
    assert stream["totalItems"] == 20
    page = json.loads((out / "iiif/activity/page-0").read_text(encoding="utf-8"))
    assert stream["last"]["id"] == page["id"] == f"{BASE}/iiif/activity/page-0"
    assert not list(out.rglob(".*"))  # no temporary files left behind
    again = run_cli("--images", str(demo_root), env=env)
    assert again.returncode == 0 and "changes published: none" in again.stdout


def test_cli_is_strict_only_when_asked(demo_root: Path, tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    text = DEMO_EXPORT.read_text(encoding="utf-8")
    export.write_text(text + "KH-BAD-1,Hỏng,,,,,,,,,,,public,,,,khong-co.tif\n", encoding="utf-8")
    env = {"IIIF_SERVER_MANIFESTS_STATE_DIR": str(tmp_path / "state"), "IIIF_SERVER_CACHE_DISK_DIR": str(tmp_path)}
    lenient = run_cli("--images", str(demo_root), "--source", str(export), env=env)
    assert lenient.returncode == 0, lenient.stderr
    assert "row 11 (KH-BAD-1): image file not found: khong-co.tif" in lenient.stdout
    assert "built 9 manifests" in lenient.stdout
    strict = run_cli("--images", str(demo_root), "--source", str(export), "--strict", env=env)
    assert strict.returncode == 1
    no_base = run_cli("--images", str(demo_root), "--out", str(tmp_path / "o"), env=env)
    assert no_base.returncode != 0 and "--base-url" in no_base.stderr
