"""A replaced master is purged from the cache and announced to harvesters, even when its manifest is unchanged."""

from __future__ import annotations

from pathlib import Path

from iiif_server.cache import cache_key
from iiif_server.cache.build import build_caches
from iiif_server.config import Settings
from iiif_server.ingest.report import run_ingest
from iiif_server.services import Services

from .test_batch import scan

EXPORT = "inventory_no,title_vi,access,rights,images\nKH-1,Ảnh lễ hội,public,,le-hoi/01.tif\n"


def test_replace_purges_the_cache_and_publishes_an_update(tmp_path: Path) -> None:
    settings = Settings().replace(
        images={"root": tmp_path / "root"},
        cache={"disk_dir": tmp_path / "cache"},
        manifests={"source": tmp_path / "export.csv", "state_dir": tmp_path / "state"},
        ingest={"workers": 1},
    )
    (tmp_path / "export.csv").write_text(EXPORT, encoding="utf-8")
    source = scan(tmp_path / "scans" / "01.png")
    lines: list[str] = []
    assert run_ingest(settings, [tmp_path / "scans"], "le-hoi", False, 1, False, lines.append) == 0
    catalogue = Services(settings).catalogue
    catalogue.build()
    assert catalogue.changes is not None
    before = catalogue.changes.count()
    shared = build_caches(settings.cache, memory=False).tiered
    key = cache_key("le-hoi/01.tif", "d:some-derivative")
    shared.put(key, b"old tile")
    scan(source, shade=90)  # rescanned: same size, so the manifest's JSON does not change
    lines.clear()
    assert run_ingest(settings, [tmp_path / "scans"], "le-hoi", True, 1, False, lines.append) == 0
    assert "1 manifest(s) updated for harvesters" in lines[-1]
    assert shared.get(key) is None
    added = catalogue.changes.activities(before, 10)
    assert [(a.type, a.object_path) for a in added] == [("Update", "iiif/manifests/KH-1")]
