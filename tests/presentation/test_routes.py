"""Manifests, collections and the activity stream over HTTP: content, headers, freshness, proxies."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from iiif_server import create_app
from iiif_server.config import Settings
from iiif_server.presentation.validate import problems

from .conftest import HEADER, ROWS, SIZES, write_export, write_image

CONTEXT = "http://iiif.io/api/presentation/3/context.json"
BASE = "http://localhost"


def get_json(client: FlaskClient, path: str, **kwargs: Any) -> dict[str, Any]:
    response = client.get(path, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    data: dict[str, Any] = response.get_json(force=True)
    return data


def test_manifest_content(collection_client: FlaskClient) -> None:
    manifest = get_json(collection_client, "/iiif/manifests/KH-DT-0001")
    assert problems(manifest) == []
    assert manifest["@context"] == CONTEXT
    assert manifest["id"] == f"{BASE}/iiif/manifests/KH-DT-0001"
    assert manifest["label"] == {"vi": ["Tháp Bà Ponagar"], "en": ["Po Nagar Cham Towers"]}
    assert manifest["rights"] == "http://creativecommons.org/licenses/by/4.0/"
    assert manifest["requiredStatement"]["value"] == {"vi": ["Bảo tàng"], "en": ["Museum"]}
    canvases = manifest["items"]
    assert [(c["width"], c["height"]) for c in canvases] == [
        SIZES["ponagar/tháp chính.tif"],
        SIZES["ponagar/mặt đông.jpg"],
    ]
    body = canvases[0]["items"][0]["items"][0]["body"]
    assert body["service"][0] == {
        "id": f"{BASE}/iiif/3/ponagar%2Fth%C3%A1p%20ch%C3%ADnh.tif",
        "type": "ImageService3",
        "profile": "level2",
    }
    assert body["service"][1]["@type"] == "ImageService2"
    assert "behavior" not in manifest  # a relic site's views are not pages
    part_of = {p["id"] for p in manifest["partOf"]}
    assert part_of == {
        f"{BASE}/iiif/collections/object-type/di-tich-kien-truc",
        f"{BASE}/iiif/collections/site/thap-ba-ponagar",
    }


def test_the_image_service_in_a_manifest_answers_with_the_same_id(collection_client: FlaskClient) -> None:
    """Viewers compare the service id with info.json's id; a mismatch sends Mirador into its auth mode."""
    manifest = get_json(collection_client, "/iiif/manifests/KH-HV-0102")
    service = manifest["items"][0]["items"][0]["items"][0]["body"]["service"][0]["id"]
    info = get_json(collection_client, service.removeprefix(BASE) + "/info.json")
    assert info["id"] == service
    assert (info["width"], info["height"]) == SIZES["hien-vat/binh.png"]
    thumbnail = manifest["thumbnail"][0]
    response = collection_client.get(thumbnail["id"].removeprefix(BASE))
    assert response.status_code == 200 and response.mimetype == "image/jpeg"


def test_paged_document_and_navdate(collection_client: FlaskClient) -> None:
    manifest = get_json(collection_client, "/iiif/manifests/KH-TL-0001")
    assert manifest["behavior"] == ["paged"]
    assert manifest["navDate"] == "1850-03-12T00:00:00Z"
    assert [c["label"]["en"] for c in manifest["items"]] == [["Page 1"], ["Page 2"], ["Page 3"]]
    assert manifest["items"][2]["width"] == 810  # each canvas has its own image's size


def test_json_ld_is_negotiated(collection_client: FlaskClient) -> None:
    plain = collection_client.get("/iiif/manifests/KH-DT-0001", headers={"Accept": "application/json"})
    assert plain.mimetype == "application/json"
    no_accept = collection_client.get("/iiif/manifests/KH-DT-0001")  # Presentation 3.0 §6: JSON-LD by default
    assert no_accept.headers["Content-Type"] == f'application/ld+json;profile="{CONTEXT}"'
    linked = collection_client.get("/iiif/manifests/KH-DT-0001", headers={"Accept": "application/ld+json"})
    assert linked.headers["Content-Type"] == f'application/ld+json;profile="{CONTEXT}"'
    assert linked.headers["Vary"] == "Accept"
    assert plain.headers["Access-Control-Allow-Origin"] == "*"


def test_etag_and_304(collection_client: FlaskClient) -> None:
    first = collection_client.get("/iiif/collections/top")
    etag = first.headers["ETag"]
    again = collection_client.get("/iiif/collections/top", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""
    other = collection_client.get("/iiif/manifests/KH-DT-0001", headers={"If-None-Match": etag})
    assert other.status_code == 200


def test_ids_follow_a_trusted_proxy(collection_settings: Settings) -> None:
    collection_client = create_app(
        collection_settings.replace(server={"trusted_proxies": ["127.0.0.0/8"]})
    ).test_client()
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "iiif.museum.vn", "X-Forwarded-Prefix": "/api"}
    manifest = get_json(collection_client, "/iiif/manifests/KH-DT-0001", headers=headers)
    assert manifest["id"] == "https://iiif.museum.vn/api/iiif/manifests/KH-DT-0001"
    service = manifest["items"][0]["items"][0]["items"][0]["body"]["service"][0]["id"]
    assert service.startswith("https://iiif.museum.vn/api/iiif/3/")
    direct = collection_client.get("/iiif/manifests/KH-DT-0001")
    assert (
        direct.headers["ETag"] != collection_client.get("/iiif/manifests/KH-DT-0001", headers=headers).headers["ETag"]
    )


def test_collections_nest(collection_client: FlaskClient) -> None:
    top = get_json(collection_client, "/iiif/collections/top")
    assert problems(top) == []
    assert [c["id"] for c in top["items"]] == [
        f"{BASE}/iiif/collections/by-object-type",
        f"{BASE}/iiif/collections/by-site",
    ]
    assert top["items"][0]["label"] == {"vi": ["Theo loại hình"], "en": ["By object type"]}
    by_type = get_json(collection_client, "/iiif/collections/by-object-type")
    values = {c["label"]["vi"][0]: c["id"] for c in by_type["items"]}
    assert set(values) == {"di tích kiến trúc", "hiện vật", "tư liệu"}
    artefacts = get_json(collection_client, values["hiện vật"].removeprefix(BASE))
    assert problems(artefacts) == []
    # the hidden stele is withheld: only the jar is listed
    assert [m["id"] for m in artefacts["items"]] == [f"{BASE}/iiif/manifests/KH-HV-0102"]
    assert artefacts["items"][0]["type"] == "Manifest"
    assert artefacts["items"][0]["label"] == {"vi": ["Bình gốm"]}  # no English: none made up
    assert artefacts["thumbnail"][0]["service"][0]["type"] == "ImageService3"
    assert artefacts["partOf"][0]["id"] == f"{BASE}/iiif/collections/by-object-type"


def test_hidden_and_unknown_are_404(collection_client: FlaskClient) -> None:
    for path in ("/iiif/manifests/KH-HV-0103", "/iiif/manifests/NOPE", "/iiif/collections/nope", "/iiif/manifests/"):
        response = collection_client.get(path)
        assert response.status_code == 404, path
        assert response.mimetype == "text/plain"
        assert response.get_data(as_text=True).count("\n") == 1


def test_embedded_resources_dereference_as_embedded(collection_client: FlaskClient) -> None:
    manifest = get_json(collection_client, "/iiif/manifests/KH-DT-0001")
    canvas = manifest["items"][1]
    page = canvas["items"][0]
    painting = page["items"][0]
    for resource in (canvas, page, painting):
        path = resource["id"].removeprefix(BASE)
        assert get_json(collection_client, path) == {"@context": CONTEXT, **resource}
        response = collection_client.get(path, headers={"If-None-Match": collection_client.get(path).headers["ETag"]})
        assert response.status_code == 304
    assert canvas["id"] == f"{BASE}/iiif/manifests/KH-DT-0001/canvas/2"
    for path in (
        "/iiif/manifests/KH-DT-0001/canvas/3",  # no third image
        "/iiif/manifests/KH-DT-0001/canvas/0",
        "/iiif/manifests/KH-DT-0001/canvas/x",
        "/iiif/manifests/KH-DT-0001/sheet/1",
        "/iiif/manifests/KH-HV-0103/canvas/1",  # hidden (internal): no manifest, no canvas
        "/iiif/manifests/NOPE/page/1",
    ):
        response = collection_client.get(path)
        assert response.status_code == 404, path
        assert response.mimetype == "text/plain" and response.get_data(as_text=True).count("\n") == 1


def test_export_edit_is_served_without_restart(collection_client: FlaskClient, collection: Path) -> None:
    before = get_json(collection_client, "/iiif/manifests/KH-DT-0001")
    rows = [list(r) for r in ROWS]
    rows[0][2] = "Po Nagar Towers (revised)"
    write_export(collection / "export.csv", rows)
    after = get_json(collection_client, "/iiif/manifests/KH-DT-0001")
    assert after["label"]["en"] == ["Po Nagar Towers (revised)"]
    assert before["label"]["en"] == ["Po Nagar Cham Towers"]


def test_replaced_image_changes_canvas_size(collection_client: FlaskClient, collection: Path) -> None:
    target = collection / "images" / "hien-vat" / "binh.png"
    write_image(target, 640, 480)
    os.utime(target, ns=(1, 1))  # a different mtime even within the same clock tick
    manifest = get_json(collection_client, "/iiif/manifests/KH-HV-0102")
    assert (manifest["items"][0]["width"], manifest["items"][0]["height"]) == (640, 480)


def test_activity_stream(collection_client: FlaskClient, collection: Path) -> None:
    stream = get_json(collection_client, "/iiif/activity/all-changes")
    assert stream["type"] == "OrderedCollection"
    assert stream["@context"] == "http://iiif.io/api/discovery/1/context.json"
    created = stream["totalItems"]
    page = get_json(collection_client, stream["last"]["id"].removeprefix(BASE))
    objects = {item["object"]["id"]: item for item in page["orderedItems"]}
    assert objects[f"{BASE}/iiif/manifests/KH-DT-0001"]["type"] == "Create"
    assert objects[f"{BASE}/iiif/manifests/KH-DT-0001"]["object"]["type"] == "Manifest"
    assert f"{BASE}/iiif/manifests/KH-HV-0103" not in objects  # hidden: never announced
    # edit one title and drop one record: an Update and a Delete, newest last
    rows = [list(r) for r in ROWS]
    rows[0][1] = "Tháp Bà Ponagar (sửa)"
    del rows[1]
    write_export(collection / "export.csv", rows)
    stream = get_json(collection_client, "/iiif/activity/all-changes")
    page = get_json(collection_client, stream["last"]["id"].removeprefix(BASE))
    new = page["orderedItems"][-(stream["totalItems"] - created) :]
    kinds = {(item["type"], item["object"]["id"].removeprefix(BASE)) for item in new}
    assert ("Update", "/iiif/manifests/KH-DT-0001") in kinds
    assert ("Delete", "/iiif/manifests/KH-HV-0102") in kinds
    assert ("Update", "/iiif/collections/object-type/hien-vat") not in kinds  # it now has no members...
    assert ("Delete", "/iiif/collections/object-type/hien-vat") in kinds  # ...so it is gone
    assert all(item["endTime"].endswith("Z") for item in new)
    assert collection_client.get("/iiif/activity/page-99").status_code == 404


def row(inventory: str, images: str = "hien-vat/binh.png", rights: str = "", date: str = "") -> list[str]:
    cells = dict.fromkeys(HEADER, "") | {"inventory_no": inventory, "title_vi": "Mẫu", "access": "public"}
    cells |= {"images": images, "rights": rights, "date": date}
    return [cells[name] for name in HEADER]


def test_bad_rows_do_not_stop_the_rest(collection_client: FlaskClient, collection: Path) -> None:
    rows = [list(r) for r in ROWS]
    rows.append(row("", images="x.tif"))
    rows.append(list(ROWS[0]))  # duplicate inventory number
    rows.append(row("KH-X-1", images="no.tif"))
    rows.append(row("KH-X-2", rights="http://x.org/"))
    rows.append(row("KH-X-3", date="1850/03/12"))
    write_export(collection / "export.csv", rows)
    catalogue = collection_client.application.extensions["iiif_catalogue"]
    snapshot = catalogue.current()
    reasons = {p.row: p.reason for p in snapshot.problems}
    assert set(reasons) == {6, 7, 8, 9, 10}
    assert "missing inventory number" in reasons[6]
    assert "duplicate inventory number (first on row 2)" in reasons[7]
    assert reasons[8] == "image file not found: no.tif"
    assert "unknown rights URI" in reasons[9]
    assert "malformed date" in reasons[10]
    assert snapshot.manifests == 3  # the three good public records still build
    assert get_json(collection_client, "/iiif/manifests/KH-TL-0001")["id"].endswith("KH-TL-0001")


def test_a_broken_or_missing_export_withdraws_nothing(collection_client: FlaskClient, collection: Path) -> None:
    """A half-copied or mangled export must not tell harvesters that everything was deleted."""
    stream = get_json(collection_client, "/iiif/activity/all-changes")
    export = collection / "export.csv"
    export.write_text("inventory_no,title_vi\nKH-DT-0001,Tháp\n", encoding="utf-8")  # no images column
    assert get_json(collection_client, "/iiif/manifests/KH-DT-0001")["label"]["vi"] == ["Tháp Bà Ponagar"]
    export.unlink()
    assert get_json(collection_client, "/iiif/activity/all-changes")["totalItems"] == stream["totalItems"]
    assert get_json(collection_client, "/iiif/manifests/KH-DT-0001")["label"]["vi"] == ["Tháp Bà Ponagar"]
    write_export(export, [])  # no rows: as likely a mistake, refused too (only `manifests build --force` withdraws all)
    assert get_json(collection_client, "/iiif/activity/all-changes")["totalItems"] == stream["totalItems"]
    assert get_json(collection_client, "/iiif/manifests/KH-DT-0001")["label"]["vi"] == ["Tháp Bà Ponagar"]


def test_status_page_lists_published_manifests_with_a_viewer_link(collection_client: FlaskClient) -> None:
    page = collection_client.get("/status").get_data(as_text=True)
    assert "3 published from the collection export" in page
    assert '<a href="/viewer?manifest=/iiif/manifests/KH-TL-0001">Mirador</a>' in page
    assert "KH-HV-0103" not in page  # withheld
