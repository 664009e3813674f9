"""Manifests of restricted records, in process: which records are published, how each image is
described (presentation/restricted.py, build.py). Over real HTTP: tests/test_restricted_manifests.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from iiif_server.access.describe import auth1_login
from iiif_server.config import Settings
from iiif_server.errors import ConfigError
from iiif_server.presentation.catalogue import Snapshot
from iiif_server.presentation.restricted import presentation_form
from iiif_server.presentation.validate import problems
from iiif_server.services import Services

from .conftest import ROWS, write_export

BASE = "https://iiif.museum.example"
STELE = "hien-vat/bia.tif"  # KH-HV-0103's image, 400 x 800


def _build(settings: Settings, rows: list[list[str]]) -> Snapshot:
    write_export(settings.manifests.source, rows)
    return Services(settings).catalogue.build()


def _manifest(snapshot: Snapshot, inventory: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(snapshot.documents[f"iiif/manifests/{inventory}"].render(BASE))
    return data


def _rows(**access: str) -> list[list[str]]:
    """The collection's rows with some access values changed, by inventory number."""
    return [[*row[:12], access.get(row[0].replace("-", "_"), row[12]), *row[13:]] for row in ROWS]


def test_a_hidden_level_can_never_be_published() -> None:
    with pytest.raises(ConfigError, match=r"manifests.publish names \['internal'\], hidden"):
        Settings().replace(manifests={"publish": ["public", "internal"]})
    assert Settings().manifests.publish == ("public", "restricted")  # restricted records: published by default
    Settings().replace(manifests={"publish": ["public", "not-a-level"]})  # harmless: its images are hidden


def test_restricted_manifests_can_be_left_unpublished(collection_settings: Settings) -> None:
    settings = collection_settings.replace(manifests={"publish": ["public"]})
    snapshot = _build(settings, _rows(KH_HV_0103="restricted"))
    assert [(r.inventory_number, why) for r, why in snapshot.withheld] == [
        ("KH-HV-0103", "access 'restricted' is not published")
    ]


def test_each_image_is_described_by_its_own_most_restrictive_level(collection_settings: Settings) -> None:
    """The jar's image also belongs to the restricted stele record: the public jar's manifest shows it
    degraded, with the services; an image under a hidden record withholds the public record showing it."""
    settings = collection_settings.replace(access={"degraded_size": 300})
    rows = _rows(KH_HV_0103="restricted")
    rows[2][16] = f"{STELE};hien-vat/binh.png"  # the stele record shows the jar's image too
    jar = _manifest(_build(settings, rows), "KH-HV-0102")
    assert problems(jar) == []
    body = jar["items"][0]["items"][0]["items"][0]["body"]
    assert body["service"][0]["service"][0]["type"] == "AuthProbeService2"
    assert jar["thumbnail"][0]["height"] == 300 and "service" not in jar["thumbnail"][0]  # 500 x 700: 214 x 300
    assert jar["requiredStatement"]["label"]["en"] == ["Attribution and access"]

    rows[2][12] = "internal"
    snapshot = _build(settings, rows)
    assert dict((r.inventory_number, why) for r, why in snapshot.withheld) == {
        "KH-HV-0102": "image hien-vat/binh.png is hidden by its access level",
        "KH-HV-0103": "access 'internal' is not published",
    }
    assert not any(b"binh.png" in d.body for d in snapshot.documents.values())  # not even in a collection


def test_every_access_service_survives_and_the_manifest_validates(collection_settings: Settings) -> None:
    """With the staff network and gallery terminals configured too. The ``external`` access service has
    no id in info.json; Presentation 3.0 requires one on every service (iiif-prezi3 would invent
    ``http://example.org/iiif/1``): it gets the probe's id with ``#external``."""
    settings = collection_settings.replace(
        access={"external_networks": ["10.0.0.0/8"], "kiosk_networks": ["192.0.2.0/24"]}
    )
    manifest = _manifest(_build(settings, _rows(KH_HV_0103="restricted")), "KH-HV-0103")
    assert problems(manifest) == []
    probe = manifest["items"][0]["items"][0]["items"][0]["body"]["service"][0]["service"][0]
    assert [s["profile"] for s in probe["service"]] == ["external", "kiosk", "active"]
    assert probe["service"][0]["id"] == f"{probe['id']}#external"  # ignored by clients; Presentation wants one
    assert probe["service"][1]["id"] == f"{BASE}/auth/2/kiosk"
    # the attribution in both languages, each followed by how to request access
    statement = manifest["requiredStatement"]["value"]
    assert [len(statement["vi"]), len(statement["en"])] == [2, 2] and statement["en"][0] == "Museum"


def test_an_auth1_block_in_presentation_form() -> None:
    block = auth1_login(Settings(), "https://x")
    form = presentation_form(block)
    assert "@context" not in form and block["@context"] == "http://iiif.io/api/auth/1/context.json"
    assert form["@type"] == "AuthCookieService1" and form["@id"] == "https://x/auth/1/login"
    assert [(inner["@id"], inner["@type"]) for inner in form["service"]] == [
        ("https://x/auth/1/token", "AuthTokenService1"),
        ("https://x/auth/1/logout", "AuthLogoutService1"),
    ]
    token = {"id": "https://x/auth/2/token", "type": "AuthAccessTokenService2"}
    active = {"id": "https://x/auth/login", "type": "AuthAccessService2", "profile": "active", "service": [token]}
    external = {"type": "AuthAccessService2", "profile": "external", "service": [token]}
    probe = {"id": "https://x/auth/2/probe/a", "type": "AuthProbeService2", "service": [external, active]}
    assert presentation_form(probe) == {**probe, "service": [{"id": f"{probe['id']}#external", **external}, active]}


def test_a_cached_manifest_is_rebuilt_when_its_image_is_tightened(
    collection_settings: Settings, tmp_path: Path
) -> None:
    """The shared cache keys a manifest's bytes on its images' levels too: no stale open manifest."""
    services = Services(collection_settings)
    write_export(collection_settings.manifests.source, _rows())
    assert "service" in _manifest(services.catalogue.build(), "KH-HV-0102")["thumbnail"][0]
    write_export(collection_settings.manifests.source, _rows(KH_HV_0102="restricted"))
    assert "service" not in _manifest(services.catalogue.build(), "KH-HV-0102")["thumbnail"][0]
