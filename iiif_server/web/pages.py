"""The museum visitor's site: the collection home at ``/``, item pages, browse pages and search.

Server-rendered (Jinja templates in ``web/templates/``, autoescaped; works without JavaScript),
bilingual (``i18n``: ``?lang=`` then the ``lang`` cookie then ``[site] default_language``; every UI
string in ``texts.SITE``), themed from ``[site]`` (title, logo, colours, footer) without editing code.
Records come from the search index of the catalogue's published records (``web/search.py``), so
a withheld or hidden record never appears; images are shown as the anonymous visitor may see
them: a restricted image's thumbnail is no larger than its degraded view, a hidden one not at all
(the image service's own policy decides, as on ``/status``).
"""

from __future__ import annotations

import logging
import re
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from flask import Blueprint, render_template, request
from werkzeug.wrappers import Response

from .. import current
from ..current import public_base
from ..errors import InvalidRequest
from ..http import page_headers
from ..presentation.build import METADATA, image_service, manifest_path
from ..presentation.records import Record, Text
from ..presentation.vocabulary import Vocabulary
from . import contentstate, embedcode, i18n, rights, urls
from .asset_routes import asset_url
from .search import Query, Results, SearchIndex
from .texts import SITE

log = logging.getLogger(__name__)
blueprint = Blueprint("pages", __name__, template_folder="templates")

CARD_SIZE = 400  # pixels, the long side of a thumbnail in a grid of records
VIEW_SIZE = 800  # pixels, the long side of an image on its item page
FORMATS = ("avif", "webp")  # Image API formats offered as <source>s, smallest first; the <img> is JPEG
MAX_QUERY = 200  # characters of a search query or a facet value
MAX_PAGE_DIGITS = 6
COOKIE_AGE = 365 * 24 * 3600
#: Browsers run no script but ours, load styles only from us (the theme's <style> carries the
#: answer's nonce), images from us (and data: for inline SVG), frames only of our own embeds.
POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'nonce-{nonce}'; script-src 'self'; "
    "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
)
FACET_KEYS = {"type": "facet_type", "site": "facet_site", "period": "facet_period", "rank": "facet_rank"}
#: schema.org type of a record by object type: an artefact is a VisualArtwork, anything else a CreativeWork.
ARTWORK_TYPES = ("hiện vật",)


@dataclass(frozen=True, slots=True)
class Picture:
    """An image as the anonymous visitor may see it: its URL in each format, at most ``size`` pixels."""

    sources: tuple[tuple[str, str], ...]  # (media type, URL), AVIF and WebP
    jpeg: str
    restricted: bool  # a degraded (watermarked, reduced) view


@dataclass(frozen=True, slots=True)
class Card:
    """A record in a grid or a result list."""

    inventory: str
    title: str
    href: str
    picture: Picture | None
    restricted: bool
    snippet: str = ""


# -- request helpers ----------------------------------------------------------------------------


def _root() -> str:
    """The prefix the site is mounted under (SCRIPT_NAME or a trusted proxy's), for links."""
    return quote(request.script_root, safe="/")


def _language() -> str:
    return i18n.choose(
        request.args.get("lang"), request.cookies.get(i18n.COOKIE), current.settings().site.default_language
    )


def _nfc(value: str, name: str) -> str:
    value = unicodedata.normalize("NFC", value).strip()
    if len(value) > MAX_QUERY:
        raise InvalidRequest(f"{name} is longer than {MAX_QUERY} characters", name)
    return value


def _page_number() -> int:
    raw = request.args.get("page", "1")
    if not re.fullmatch(rf"[0-9]{{1,{MAX_PAGE_DIGITS}}}", raw) or int(raw) < 1:
        raise InvalidRequest("page must be a whole number from 1", "page")
    return int(raw)


def _picture(identifier: str, size: int) -> Picture | None:
    """The image at ``size`` as the policy allows anyone: None when hidden or gone."""
    limit = current.image_service().public_view(identifier)
    if limit is None:
        return None  # hidden, or missing since the build: the page still shows the record
    restricted = bool(limit)
    if restricted:
        size = min(size, limit)
    base = f"{image_service(_root(), identifier)}/full/!{size},{size}/0/default"
    return Picture(tuple((f"image/{f}", f"{base}.{f}") for f in FORMATS), f"{base}.jpg", restricted)


def _restricted(record: Record) -> bool:
    return current.settings().access.levels.get(record.access) == "degraded"


def _card(record: Record, language: str, snippet: str = "") -> Card:
    picture = _picture(record.images[0], CARD_SIZE) if record.images else None
    return Card(
        record.inventory_number,
        i18n.pick(record.title, language) or record.inventory_number,
        _root() + urls.item_path(record.inventory_number),
        picture,
        _restricted(record) or bool(picture and picture.restricted),
        snippet,
    )


def _facet_label(facet: str, language: str) -> str:
    return i18n.lookup(SITE, FACET_KEYS[facet], language)


def _search_url(q: str = "", filters: Mapping[str, str] | None = None, page: int = 1) -> str:
    """``/search?q=…&type=…&page=…`` with only what is set (filters by facet URL name)."""
    pairs = [("q", q)] if q else []
    pairs += [(facet, value) for facet, value in (filters or {}).items() if value]
    if page > 1:
        pairs.append(("page", str(page)))
    return _root() + urls.SEARCH + ("?" + urlencode(pairs) if pairs else "")


def _facet_groups(results: Results, language: str, q: str, active: Mapping[str, str]) -> list[dict[str, Any]]:
    """Each facet's values among the results, linked to the search narrowed (or widened) by it."""
    groups = []
    for facet, field in urls.FACETS.items():
        values = []
        for found in results.facets.get(field, ()):
            chosen = active.get(facet) == found.value
            narrowed = {**active, facet: "" if chosen else found.value}
            label, href = i18n.pick(found.label, language), _search_url(q, narrowed)
            values.append({"label": label, "count": found.count, "href": href, "active": chosen})
        if values:
            groups.append({"facet": facet, "label": _facet_label(facet, language), "values": values})
    return groups


def _pager(results: Results, page_size: int, link: Any) -> dict[str, Any]:
    pages = max(1, -(-results.total // page_size))
    page = results.query.page
    return {
        "page": page,
        "pages": pages,
        "previous": link(page - 1) if page > 1 else "",
        "next": link(page + 1) if page < pages else "",
    }


def _search(index: SearchIndex, query: Query) -> Results:
    """The results of ``query``; a page past the last one is the last one (a stale link still lands)."""
    results = index.search(query)
    last = max(1, -(-results.total // query.page_size))
    if query.page > last:
        results = index.search(Query(query.text, query.filters, last, query.page_size))
    return results


def _render(template: str, status: int = 200, title: str = "", **context: Any) -> Response:
    """A page of the site in the request's language, with the theme, its CSP and the language cookie."""
    settings = current.settings()
    site, manifests = settings.site, settings.manifests
    language = _language()
    other = i18n.other(language)
    nonce = secrets.token_urlsafe(16)
    site_title = i18n.pick(Text(site.title_vi, site.title_en), language) or i18n.pick(
        Text(manifests.collection_label_vi, manifests.collection_label_en), language
    )
    footer = i18n.pick(Text(site.footer_vi, site.footer_en), language) or i18n.pick(
        Text(manifests.provider_label_vi, manifests.provider_label_en), language
    )
    switch = request.args.to_dict(flat=False)
    switch["lang"] = [other]
    html = render_template(
        template,
        lang=language,
        other_lang=other,
        t=lambda key: i18n.lookup(SITE, key, language),
        root=_root(),
        asset=asset_url,
        nonce=nonce,
        site_title=site_title,
        page_title=f"{title} – {site_title}" if title else site_title,
        footer=footer,
        logo=_logo(site.logo),
        primary=site.primary_colour,
        accent=site.accent_colour,
        switch_url=_root() + quote(request.path, safe="/") + "?" + urlencode(switch, doseq=True),
        facets=[(facet, _facet_label(facet, language), _root() + urls.browse_path(facet)) for facet in urls.FACETS],
        search_url=_root() + urls.SEARCH,
        **context,
    )
    response = Response(html, status=status, mimetype="text/html")
    response.headers.update(page_headers(POLICY.format(nonce=nonce), ("'self'",), cache="no-cache"))
    response.vary.add("Cookie")
    if request.args.get("lang") in i18n.LANGUAGES:
        response.set_cookie(
            i18n.COOKIE, language, max_age=COOKIE_AGE, path=_root() or "/", samesite="Lax", secure=request.is_secure
        )
    return response


def _logo(logo: str) -> str:
    if not logo:
        return ""
    try:
        return asset_url(f"theme/logo{Path(logo).suffix.lower()}")
    except KeyError:  # unreadable file: a page without the logo, not a broken site
        log.warning("[site] logo %s cannot be read; pages show none", logo)
        return ""


def _language_query(language: str) -> str:
    """``?lang=en`` for a language other than the site's default: the snippet copied from an English
    page embeds an English viewer; the default needs nothing."""
    return "" if language == current.settings().site.default_language else "?" + urlencode({"lang": language})


def _not_found() -> Response:
    return _render("not_found.html", 404, title=i18n.lookup(SITE, "not_found", _language()))


def wants_page() -> bool:
    """A browser navigating (it prefers HTML to plain text), not an API client or a script."""
    accepted = request.accept_mimetypes
    return request.method in ("GET", "HEAD") and accepted["text/html"] > accepted["text/plain"]


def not_found_page() -> Response:
    """The site's bilingual 404 page, for a browser that followed a dead link to this site."""
    return _not_found()


# -- pages --------------------------------------------------------------------------------------


@blueprint.get(urls.HOME)
def home() -> Response:
    language = _language()
    index = current.search_index()
    page_size = current.settings().site.page_size
    everything = index.search(Query(page_size=page_size))
    facets = []
    for facet, field in urls.FACETS.items():
        values = index.values(field)
        facets.append(
            {
                "label": _facet_label(facet, language),
                "href": _root() + urls.browse_path(facet),
                "count": len(values),
                "values": [
                    (i18n.pick(v.label, language), v.count, _root() + urls.browse_path(facet, v.value))
                    for v in values[:8]
                ],
            }
        )
    images = sum(len(record.images) for record in current.catalogue().current().published)
    return _render(
        "home.html",
        total=everything.total,
        images=images,
        facet_entries=facets,
        cards=[_card(hit.record, language) for hit in everything.hits],
        more=everything.total > len(everything.hits),
    )


def _metadata(record: Record, vocabulary: Vocabulary, language: str) -> list[tuple[str, str, str]]:
    """(label, value, browse link or "") per field of the manifests' metadata, in their order."""
    browsable = {field: facet for facet, field in urls.FACETS.items()}
    pairs = []
    for name, vi, en, value_language in METADATA:
        value = record.field(name)
        if not value:
            continue
        shown = i18n.pick(vocabulary.text(name, value), language) if value_language == "vi" else value
        if name == "dimensions":
            shown = shown.replace(" x ", " × ")
        link = _root() + urls.browse_path(browsable[name], value) if name in browsable else ""
        pairs.append((i18n.pick(Text(vi, en), language), shown, link))
    return pairs


@blueprint.get(f"{urls.ITEMS}/<path:inventory>")
def item(inventory: str) -> Response:
    language = _language()
    inventory = unicodedata.normalize("NFC", inventory)
    record = current.search_index().get(inventory)
    if record is None:
        return _not_found()
    settings = current.settings()
    vocabulary = current.catalogue().current().vocabulary
    base = public_base()
    title = i18n.pick(record.title, language) or record.inventory_number
    pictures = [p for p in (_picture(identifier, VIEW_SIZE) for identifier in record.images) if p is not None]
    restricted = _restricted(record) or any(p.restricted for p in pictures)
    embed_query = {"lang": language}  # the viewer speaks the page's language
    shared = request.args.get(contentstate.PARAMETER)
    if shared is not None:
        if len(shared) > contentstate.MAX_LENGTH:
            raise InvalidRequest(f"{contentstate.PARAMETER} is longer than {contentstate.MAX_LENGTH} characters")
        embed_query[contentstate.PARAMETER] = shared
    embed = _root() + urls.embed_path(record.inventory_number) + "?" + urlencode(embed_query)
    item_url = base + urls.item_path(record.inventory_number)
    manifest = f"{base}/{manifest_path(record.inventory_number)}"
    attribution = i18n.pick(record.attribution, language) or i18n.pick(
        Text(settings.manifests.provider_label_vi, settings.manifests.provider_label_en), language
    )
    thumbnails = [base + p.jpeg.removeprefix(_root()) for p in pictures]
    linked_data = {
        "@context": "https://schema.org",
        "@type": "VisualArtwork" if record.object_type in ARTWORK_TYPES else "CreativeWork",
        "name": title,
        "identifier": record.inventory_number,
        "url": item_url,
        "inLanguage": language,
        **({"description": d} if (d := i18n.pick(record.description, language)) else {}),
        **({"image": thumbnails} if thumbnails else {}),
        **({"license": record.rights} if record.rights else {}),
        "creditText": attribution,
    }
    return _render(
        "item.html",
        title=title,
        record=record,
        item_title=title,
        description=i18n.pick(record.description, language),
        pictures=pictures,
        restricted=restricted,
        access_note=i18n.pick(Text(settings.access.access_note_vi, settings.access.access_note_en), language),
        metadata=_metadata(record, vocabulary, language),
        rights_uri=record.rights,
        rights_name=rights.name(record.rights) if record.rights else "",
        attribution=attribution,
        embed_src=embed,
        manifest=manifest,
        drag_and_drop=f"{manifest}?manifest={quote(manifest, safe=':/')}",
        embed_code=embedcode.iframe(base + urls.embed_path(record.inventory_number) + _language_query(language), title),
        oembed=f"{base}{urls.OEMBED}?url={quote(item_url, safe='')}&format=json",
        linked_data=linked_data,
    )


@blueprint.get(f"{urls.BROWSE}/<facet>")
def browse(facet: str) -> Response:
    if facet not in urls.FACETS:
        return _not_found()
    language = _language()
    values = [
        (i18n.pick(v.label, language), v.count, _root() + urls.browse_path(facet, v.value))
        for v in current.search_index().values(urls.FACETS[facet])
    ]
    label = _facet_label(facet, language)
    return _render("browse.html", title=label, facet_label=label, values=values)


@blueprint.get(f"{urls.BROWSE}/<facet>/<path:value>")
def browse_value(facet: str, value: str) -> Response:
    if facet not in urls.FACETS:
        return _not_found()
    language = _language()
    value = _nfc(value, "value")
    field = urls.FACETS[facet]
    index = current.search_index()
    known = {v.value: v for v in index.values(field)}
    if value not in known:
        return _not_found()
    page_size = current.settings().site.page_size
    results = _search(index, Query(filters={field: value}, page=_page_number(), page_size=page_size))
    here = _root() + urls.browse_path(facet, value)
    label = i18n.pick(known[value].label, language)
    return _render(
        "results.html",
        title=f"{_facet_label(facet, language)}: {label}",
        heading=label,
        facet_label=_facet_label(facet, language),
        facet_href=_root() + urls.browse_path(facet),
        q="",
        results=results,
        cards=[_card(hit.record, language) for hit in results.hits],
        groups=_facet_groups(results, language, "", {facet: value}),
        pager=_pager(results, page_size, lambda n: here + (f"?page={n}" if n > 1 else "")),
    )


@blueprint.get(urls.SEARCH)
def search() -> Response:
    language = _language()
    q = _nfc(request.args.get("q", ""), "q")
    active = {facet: _nfc(request.args.get(facet, ""), facet) for facet in urls.FACETS}
    active = {facet: value for facet, value in active.items() if value}
    page_size = current.settings().site.page_size
    filters = {urls.FACETS[facet]: value for facet, value in active.items()}
    results = _search(current.search_index(), Query(q, filters, _page_number(), page_size))
    heading = f"{i18n.lookup(SITE, 'results_for', language)} “{q}”" if q else i18n.lookup(SITE, "search", language)
    return _render(
        "results.html",
        title=heading,
        heading=heading,
        q=q,
        searching=True,
        results=results,
        cards=[_card(hit.record, language, hit.snippet) for hit in results.hits],
        groups=_facet_groups(results, language, q, active),
        active=_active_filters(results, active, q, language),
        pager=_pager(results, page_size, lambda n: _search_url(q, active, n)),
    )


def _active_filters(
    results: Results, active: Mapping[str, str], q: str, language: str
) -> Sequence[tuple[str, str, str]]:
    """(facet label, value label, link without it) per filter in force, so each can be removed."""
    chosen = []
    for facet, value in active.items():
        labels = {v.value: v.label for v in results.facets.get(urls.FACETS[facet], ())}
        shown = i18n.pick(labels.get(value, Text(value)), language)
        chosen.append((_facet_label(facet, language), shown, _search_url(q, {**active, facet: ""})))
    return chosen
