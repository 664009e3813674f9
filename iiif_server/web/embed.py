"""The pages a museum pastes into its articles: ``/embed/<inventory>`` and ``/embed/image/<identifier>``.

A deep-zoom viewer (OpenSeadragon, vendored) of a published record's canvases or of one public
image, with its own bilingual buttons, page navigation for multi-image records, the object's label,
rights and attribution, and a link back to the full record; ``?viewer=mirador`` gives Mirador on
the same manifest (research use: ~690 KB gzipped). The page is built from the manifest the
catalogue holds (no HTTP to ourselves): each canvas becomes the info.json URL an anonymous visitor
gets — a restricted image's ``~preview`` tier, never its full tiles, whoever is logged in —
handed to ``static/embed/embed.js`` in a JSON data block (no inline script; the theme's
colours in one <style> allowed by its hash). ``?iiif-content=`` (IIIF Content State 1.0) opens a canvas at a region.

Frameable per ``[site] frame_ancestors`` (``*`` by default); cached ``public, max-age=300``, as they
change when the record does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from flask import Blueprint, render_template, request
from werkzeug.wrappers import Response

from .. import current
from ..access.endpoints import DEGRADED_TIER
from ..current import public_base
from ..errors import InvalidRequest, NotFound
from ..http import page_headers
from ..image.model import ApiVersion
from ..image.service import ImageService, service_path
from ..presentation.build import manifest_path
from ..presentation.records import Record, Text
from . import contentstate, i18n, urls
from .asset_routes import asset_url
from .rights import name as rights_name

blueprint = Blueprint("embed", __name__, template_folder="templates")

CACHE = "public, max-age=300"  # an embed changes when its record does
VIEWERS = ("openseadragon", "mirador")
#: The embeds' Content-Security-Policy (before ``frame-ancestors``): everything from this server.
#: ``data:`` images are embed.js's AVIF/WebP decoding probes; Mirador's styling library writes
#: ``<style>`` elements, so its page allows inline styles (no inline scripts on either).
POLICY = (
    "default-src 'self'; script-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; object-src 'none'"
)

#: The embeds' words, in both languages (``i18n.lookup``).
TEXTS: dict[str, Text] = {
    "controls": Text("Điều khiển trình xem", "Viewer controls"),
    "zoom_in": Text("Phóng to", "Zoom in"),
    "zoom_out": Text("Thu nhỏ", "Zoom out"),
    "home": Text("Xem toàn bộ ảnh", "Show the whole image"),
    "full_screen": Text("Toàn màn hình", "Full screen"),
    "previous": Text("Ảnh trước", "Previous image"),
    "next": Text("Ảnh sau", "Next image"),
    "share": Text("Chia sẻ khung nhìn này", "Share this view"),
    "share_link": Text("Liên kết đến khung nhìn này", "Link to this view"),
    "copied": Text("Đã sao chép liên kết.", "Link copied."),
    "copy_hint": Text("Hãy sao chép liên kết ở trên.", "Copy the link above."),
    "canvas": Text(
        "Ảnh phóng to được: phím mũi tên để di chuyển, + và − để phóng to, thu nhỏ, 0 để xem toàn bộ; "
        "Page Up, Page Down để chuyển ảnh.",
        "Zoomable image: arrow keys move, + and − zoom, 0 shows it whole; Page Up and Page Down change image.",
    ),
    "rights": Text("Quyền sử dụng", "Rights"),
    "record": Text("Xem hồ sơ đầy đủ", "View the full record"),
    "preview": Text("Bản xem trước thu nhỏ (hạn chế truy cập)", "Reduced preview (restricted access)"),
    "no_script": Text("Trình xem cần JavaScript.", "The viewer needs JavaScript."),
}


@dataclass(frozen=True, slots=True)
class Canvas:
    """One page of the viewer: the canvas's id and size, and the info.json an anonymous visitor gets."""

    id: str
    label: str
    width: int
    height: int
    info: str
    preview: bool  # the ~preview tier of a restricted image

    def data(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "width": self.width, "height": self.height, "info": self.info}


def _language() -> str:
    """``?lang=``, else ``[site] default_language`` (no cookie: an embed on a museum's article page
    follows the snippet, not what the visitor last chose on our site)."""
    return i18n.choose(request.args.get("lang"), None, current.settings().site.default_language)


def _viewer() -> str:
    viewer = request.args.get("viewer", "openseadragon")
    if viewer not in VIEWERS:
        raise InvalidRequest(f"unknown viewer {viewer!r}: openseadragon (the default) or mirador", "viewer")
    return viewer


def _anonymous_info(service: ImageService, identifier: str, service_id: str) -> tuple[str, bool] | None:
    """The info.json URL of what an anonymous visitor may see of an image, and whether it is the
    preview tier; None when the image is hidden (or gone)."""
    limit = service.public_view(identifier)
    if limit is None:
        return None
    if limit:
        return f"{service_id}{DEGRADED_TIER}/info.json", True
    return f"{service_id}/info.json", False


def _language_map(value: Any) -> Text:
    """A IIIF language map as ``Text`` (``none`` stands for both languages)."""
    if not isinstance(value, dict):
        return Text()
    first = lambda key: " ".join(value.get(key) or [])  # noqa: E731
    return Text(first("vi") or first("none"), first("en") or first("none"))


def canvases(manifest: dict[str, Any], base: str, service: ImageService, language: str) -> list[Canvas]:
    """The manifest's canvases as viewer pages; canvases with no image an anonymous visitor may see
    (hidden, or not an image of this server) are left out."""
    prefix = f"{base}/iiif/3/"
    found = []
    for canvas in manifest.get("items", []):
        for page in canvas.get("items", []):
            for annotation in page.get("items", []):
                services = annotation.get("body", {}).get("service", [])
                ids = [s.get("id", "") for s in services if s.get("type") == "ImageService3"]
                if not ids or not ids[0].startswith(prefix):
                    continue
                info = _anonymous_info(service, unquote(ids[0][len(prefix) :]), ids[0])
                if info is None:
                    continue
                label = i18n.pick(_language_map(canvas.get("label")), language)
                found.append(Canvas(canvas["id"], label, canvas["width"], canvas["height"], info[0], info[1]))
                break
            else:
                continue
            break
    return found


def _content_state(manifest: dict[str, Any], pages: list[Canvas]) -> dict[str, Any] | None:
    """Where ``?iiif-content=`` opens: the page index and region (canvas pixels), or None when there is
    none; a one-line 400 when it is no content state, or not a view of this record's manifest."""
    value = request.args.get(contentstate.PARAMETER)
    if value is None:
        return None
    try:
        opening = contentstate.resolve(contentstate.decode(value), manifest)
    except contentstate.InvalidContentState as error:
        raise InvalidRequest(str(error), contentstate.PARAMETER) from None
    canvas_id = manifest["items"][opening.canvas_index]["id"]
    index = next((i for i, page in enumerate(pages) if page.id == canvas_id), None)
    if index is None:  # a canvas whose image no visitor may see
        raise InvalidRequest("iiif-content names a canvas this page does not show", contentstate.PARAMETER)
    return {"canvas": index, "region": list(opening.region) if opening.region else None}


def _page(
    *,
    title: str,
    record: Record | None,
    pages: list[Canvas],
    viewer: str,
    language: str,
    manifest_id: str | None,
    start: dict[str, Any] | None,
) -> Response:
    settings = current.settings()
    base = public_base()
    item = f"{base}{urls.item_path(record.inventory_number)}" if record else None
    data = {
        "viewer": viewer,
        "language": language,
        "manifest": manifest_id,
        "item": item,
        "canvases": [page.data() for page in pages],
        "formats": list(settings.site.embed_formats),
        "start": start or {"canvas": 0, "region": None},
        "texts": {key: i18n.lookup(TEXTS, key, language) for key in ("copied", "copy_hint")},
    }
    theme = f":root{{--primary:{settings.site.primary_colour};--accent:{settings.site.accent_colour}}}"
    scripts = [asset_url("mirador/mirador.min.js")] if viewer == "mirador" else []
    scripts += [asset_url("openseadragon/openseadragon.min.js")] if viewer == "openseadragon" else []
    body = render_template(
        "embed.html",
        language=language,
        title=title,
        text=lambda key: i18n.lookup(TEXTS, key, language),
        attribution=i18n.pick(record.attribution, language) if record else "",
        rights=(rights_name(record.rights), record.rights) if record and record.rights else None,
        item=item,
        pages=len(pages),
        preview=any(page.preview for page in pages),
        viewer=viewer,
        data=data,
        scripts=[*scripts, asset_url("embed/embed.js")],
        stylesheet=asset_url("embed/embed.css"),
        theme=theme,
    )
    # The theme's <style> is allowed by its hash, not a nonce: the page is cached (public, 5 min), so a
    # nonce would be served to many visitors. Mirador's styles need 'unsafe-inline' (which a hash beside
    # it would switch off).
    style = "style-src 'self' 'unsafe-inline'" if viewer == "mirador" else f"style-src 'self' {_hash_source(theme)}"
    headers = page_headers(f"{POLICY}; {style}", settings.site.frame_ancestors, cache=CACHE)
    return Response(body, mimetype="text/html", headers=headers)


def _hash_source(text: str) -> str:
    """A CSP hash source of an inline element's text (CSP Level 2: sha256 of its UTF-8, base64)."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@blueprint.get(f"{urls.IMAGE_EMBED}/<path:identifier>")
def image_embed(identifier: str) -> Response:
    """One public image (hidden: 404; restricted: its preview tier), OpenSeadragon only."""
    identifier = unicodedata.normalize("NFC", identifier)
    if _viewer() != "openseadragon":
        raise InvalidRequest("viewer=mirador needs a manifest: use the record's embed, /embed/<inventory>", "viewer")
    service = current.image_service()
    base = public_base()
    service_id = base + service_path(ApiVersion.V3, identifier)
    info = _anonymous_info(service, identifier, service_id)
    if info is None:
        raise NotFound(f"no image {identifier!r}", "identifier")
    language = _language()
    record = current.search_index().showing(identifier)
    title = i18n.pick(record.title, language) if record else identifier.rsplit("/", 1)[-1]
    canvas = Canvas(service_id, title, 0, 0, info[0], info[1])  # size: from info.json
    return _page(
        title=title,
        record=record,
        pages=[canvas],
        viewer="openseadragon",
        language=language,
        manifest_id=None,
        start=None,
    )


@blueprint.get(f"{urls.EMBED}/<path:inventory>")
def embed(inventory: str) -> Response:
    """A published record's manifest: OpenSeadragon with page navigation, or ``?viewer=mirador``."""
    inventory = unicodedata.normalize("NFC", inventory)
    viewer = _viewer()
    catalogue = current.catalogue()
    document = catalogue.current().documents.get(manifest_path(inventory))
    record = current.search_index().get(inventory)
    if document is None or record is None:
        raise NotFound(f"no published record {inventory!r}", "identifier")
    base = public_base()
    manifest = json.loads(document.render(base))
    language = _language()
    service = current.image_service()
    pages = canvases(manifest, base, service, language)
    if not pages and viewer == "openseadragon":
        raise NotFound(f"record {inventory!r} has no image to show", "identifier")
    start = _content_state(manifest, pages)
    return _page(
        title=i18n.pick(record.title, language),
        record=record,
        pages=pages,
        viewer=viewer,
        language=language,
        manifest_id=manifest["id"],
        start=start,
    )
