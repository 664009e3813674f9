"""``GET /oembed?url=…``: oEmbed 1.0 (https://oembed.com), so a CMS given a link to an item page
embeds the object's viewer by itself.

The answer is a ``rich`` type whose ``html`` is exactly the snippet item pages show
(``embedcode.iframe``): an ``<iframe>`` of the embed page, never markup of its own. Only URLs of
this server's own pages are answered (compared with ``http.base_url``, never with what the client's
Host says when ``[server] public_base_url`` is set): an item page ``/items/<inv>``, an embed page
``/embed/<inv>`` or ``/embed/image/<identifier>``. Anything else is 404, as the spec's "no response
for the requested url" (§2.3.4); a malformed request is 400; ``format=xml`` is 501, which the spec
allows ("Not Implemented").

A restricted record is answered too: its embed shows the preview tier only, and the thumbnail is
no larger than the degraded size (``presentation.build.thumbnail`` applies it, as in manifests).

The pure part (``target``, ``frame_size``, ``thumbnail_bound``, ``answer``) knows nothing of Flask;
the route gathers the record, the image's size and the policy's decision.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from flask import Blueprint, request
from werkzeug.wrappers import Response

from .. import current
from ..errors import IIIFError, InvalidRequest, NotFound
from ..http import error_body
from ..image.service import ImageService
from ..presentation.build import ImageRef, manifest_path, thumbnail
from ..presentation.records import Text
from . import contentstate, embedcode, i18n, urls

blueprint = Blueprint("oembed", __name__)

VERSION = "1.0"
MAX_URL = 2048  # characters of ``url``; a link to a page here is far shorter
CACHE_AGE = 300  # seconds: an answer changes when the record changes, as the embed page does
CACHE_CONTROL = f"public, max-age={CACHE_AGE}"
_DIMENSION = re.compile(r"[0-9]{1,9}")
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Query parameters of the page URL carried on to the embed page's URL (the others are dropped).
_CARRIED = ("lang", "viewer", contentstate.PARAMETER)


@dataclass(frozen=True, slots=True)
class Target:
    """What a page URL names: a published record (``item``) or one image (``image``), and the
    embed page's query it carries (language, viewer, a shared view)."""

    kind: Literal["item", "image"]
    key: str  # an inventory number or an image identifier, NFC
    query: tuple[tuple[str, str], ...] = ()


def _origin(scheme: str, host: str, port: int | None) -> tuple[str, str, int | None]:
    return scheme.lower(), host.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme.lower())


def target(url: str, base: str) -> Target:
    """The page ``url`` names on the site at ``base``; InvalidRequest (400) if ``url`` is no
    absolute http(s) URL, NotFound (404) if it is not a page of this site that can be embedded."""
    if not url:
        raise InvalidRequest("missing query parameter: url (the address of an item page on this site)", "url")
    if len(url) > MAX_URL:
        raise InvalidRequest(f"url is longer than {MAX_URL} characters", "url")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url) or "\\" in url:
        raise InvalidRequest("url must not contain spaces, control characters or backslashes", "url")
    try:
        parts, site = urlsplit(url), urlsplit(base)
        port, site_port = parts.port, site.port
    except ValueError:
        raise InvalidRequest("url is not a valid URL", "url") from None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise InvalidRequest("url must be an absolute http(s) URL", "url")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest("url must not carry a user name or password", "url")
    if _origin(parts.scheme, parts.hostname, port) != _origin(site.scheme, site.hostname or "", site_port):
        raise NotFound("url is not a page of this site")
    prefix = site.path.rstrip("/")
    if not parts.path.startswith(prefix + "/"):
        raise NotFound("url is not a page of this site")
    segments = [unicodedata.normalize("NFC", unquote(s)) for s in parts.path[len(prefix) + 1 :].split("/")]
    if any(s in ("", ".", "..") or "\x00" in s for s in segments):
        raise NotFound("url names no embeddable page")
    query = tuple((k, v) for k, v in parse_qsl(parts.query) if k in _CARRIED)
    match segments:
        case [items, inventory] if "/" + items == urls.ITEMS:
            return Target("item", inventory, query)
        case [embed, "image", *identifier] if "/" + embed == urls.EMBED and identifier:
            return Target("image", "/".join(identifier), query)
        case [embed, inventory] if "/" + embed == urls.EMBED:
            return Target("item", inventory, query)
    raise NotFound("url names no embeddable page (an item page /items/… or an embed page /embed/…)")


def dimension(value: str | None, name: str) -> int | None:
    """``maxwidth``/``maxheight``: a positive whole number of pixels, or absent."""
    if value is None:
        return None
    if not _DIMENSION.fullmatch(value) or int(value) == 0:
        raise InvalidRequest(f"{name} must be a positive whole number of pixels", name)
    return int(value)


def frame_size(maxwidth: int | None, maxheight: int | None) -> tuple[int, int]:
    """The iframe's size: the snippet's (``embedcode`` defaults), scaled down as a whole (its aspect
    kept) until it fits within ``maxwidth`` × ``maxheight`` (oEmbed §2.2: the provider must respect them)."""
    width, height = embedcode.DEFAULT_WIDTH, embedcode.DEFAULT_HEIGHT
    scale = min(1.0, (maxwidth or width) / width, (maxheight or height) / height)
    return max(1, int(width * scale)), max(1, int(height * scale))


def thumbnail_bound(width: int, height: int, size: int, maxwidth: int | None, maxheight: int | None) -> int:
    """The long side to ask ``build.thumbnail`` for, so that a ``width`` × ``height`` image scaled to it
    keeps its aspect and fits within ``size`` and within maxwidth × maxheight (rounding included)."""
    long_side = max(width, height)
    if maxwidth is not None:
        size = min(size, maxwidth * long_side // width)
    if maxheight is not None:
        size = min(size, maxheight * long_side // height)
    return max(1, size)


def answer(
    *,
    embed_url: str,
    title: str,
    frame: tuple[int, int],
    provider: tuple[str, str],
    thumb: tuple[str, int, int] | None = None,
    author: str = "",
) -> dict[str, Any]:
    """The oEmbed ``rich`` response (§2.3.4): the iframe snippet and what a CMS shows beside it."""
    width, height = frame
    body: dict[str, Any] = {
        "version": VERSION,
        "type": "rich",
        "html": embedcode.iframe(embed_url, title, width, height),
        "width": width,
        "height": height,
        "title": title,
        "provider_name": provider[0],
        "provider_url": provider[1],
        "cache_age": CACHE_AGE,
    }
    if author:
        body["author_name"] = author
    if thumb is not None:
        body["thumbnail_url"], body["thumbnail_width"], body["thumbnail_height"] = thumb
    return body


def _image_thumb(
    service: ImageService, base: str, identifier: str, size: int, maxwidth: int | None, maxheight: int | None
) -> tuple[str, int, int] | None:
    """The thumbnail of one image as an anonymous visitor may see it; None if it is hidden or gone."""
    degraded = service.public_view(identifier)
    if degraded is None:
        return None
    try:
        located = service.source.locate(identifier)
        width, height = service.inspector.dimensions(located)
    except IIIFError:
        return None
    ref = ImageRef(located.identifier, width, height, degraded)
    body = thumbnail(base, ref, thumbnail_bound(width, height, size, maxwidth, maxheight))
    return str(body.id), int(body.width or 0), int(body.height or 0)


def _embed_url(base: str, found: Target) -> str:
    path = urls.embed_path(found.key) if found.kind == "item" else urls.image_embed_path(found.key)
    return base + path + (f"?{urlencode(found.query)}" if found.query else "")


def _check_view(found: Target, base: str) -> None:
    """A shared view (``iiif-content``) must decode and be of this record's manifest."""
    value = dict(found.query).get(contentstate.PARAMETER)
    if value is None:
        return
    try:
        view = contentstate.decode(value)
    except contentstate.InvalidContentState as error:
        raise InvalidRequest(f"url's {contentstate.PARAMETER}: {error}", "url") from None
    manifest = f"{base}/{manifest_path(found.key)}"
    ours = view.manifest_id == manifest or (not view.manifest_id and view.canvas_id.startswith(manifest + "/canvas/"))
    if found.kind != "item" or not ours:
        raise InvalidRequest(f"url's {contentstate.PARAMETER} is a view of another object", "url")


@blueprint.get(urls.OEMBED)
def oembed() -> Response:
    fmt = request.args.get("format", "json")
    if fmt != "json":
        body, headers = error_body(f"format {fmt[:20]!r} is not implemented; ask for format=json")
        return Response(body, status=501, headers=headers)
    maxwidth = dimension(request.args.get("maxwidth"), "maxwidth")
    maxheight = dimension(request.args.get("maxheight"), "maxheight")
    settings = current.settings()
    base = current.public_base()
    found = target(request.args.get("url", ""), base)
    _check_view(found, base)
    language = i18n.choose(dict(found.query).get("lang"), None, settings.site.default_language)
    service = current.image_service()
    records = current.search_index()
    size = settings.manifests.thumbnail_size
    if found.kind == "item":
        record = records.get(found.key)
        if record is None:
            raise NotFound(f"url names no published record: {found.key}")
        title = i18n.pick(record.title, language) or record.inventory_number
        first = record.images[0] if record.images else None
        thumb = _image_thumb(service, base, first, size, maxwidth, maxheight) if first else None
    else:
        thumb = _image_thumb(service, base, found.key, size, maxwidth, maxheight)
        if thumb is None:
            raise NotFound(f"url names no public image: {found.key}")
        record = records.showing(found.key)
        title = (i18n.pick(record.title, language) if record else "") or found.key.rsplit("/", 1)[-1]
    labels = Text(settings.manifests.provider_label_vi, settings.manifests.provider_label_en)
    provider = (i18n.pick(labels, language), settings.manifests.provider_homepage or base + urls.HOME)
    answered = answer(
        embed_url=_embed_url(base, found),
        title=title,
        frame=frame_size(maxwidth, maxheight),
        provider=provider,
        thumb=thumb,
        author=i18n.pick(record.attribution, language) if record else "",
    )
    data = json.dumps(answered, ensure_ascii=False).encode()
    return Response(data, mimetype="application/json", headers={"Cache-Control": CACHE_CONTROL})
