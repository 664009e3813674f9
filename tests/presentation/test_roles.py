"""``[manifests] role``: in a cluster only the writer records Change Discovery; readers never do."""

from __future__ import annotations

from pathlib import Path

from iiif_server.config import Settings
from iiif_server.presentation.catalogue import CHANGES_FILE, change_log
from iiif_server.services import Services

from .conftest import ROWS, write_export


def test_a_reader_builds_the_same_manifests_but_records_nothing(collection_settings: Settings) -> None:
    reader = collection_settings.replace(manifests={"role": "reader"})
    state = Path(reader.manifests.state_dir)
    assert change_log(reader.manifests) is None and not (state / CHANGES_FILE).exists()  # never created by a reader
    built = Services(reader, memory_cache=False).catalogue.build()
    assert not (state / CHANGES_FILE).exists()
    writer = Services(collection_settings, memory_cache=False).catalogue
    assert {p: d.etag for p, d in writer.build().documents.items()} == {p: d.etag for p, d in built.documents.items()}
    log = change_log(reader.manifests)  # the writer's history exists now: a reader serves it, unchanged
    assert log is not None and log.count() == len(built.documents)
    edited = [[*ROWS[0][:10], "Mô tả mới", *ROWS[0][11:]], *ROWS[1:]]
    write_export(Path(reader.manifests.source), edited)  # a change: the reader sees it, the writer records it
    assert Services(reader, memory_cache=False).catalogue.build().documents != built.documents
    assert log.count() == len(built.documents)
    Services(collection_settings, memory_cache=False).catalogue.build()
    assert log.count() == len(built.documents) + 1 and log.activities(len(built.documents), 1)[0].type == "Update"
