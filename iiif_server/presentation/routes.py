"""HTTP for the presentation layer: Manifests, Collections and the Change Discovery stream.

    /iiif/manifests/{inventory number}
    /iiif/manifests/{inventory number}/canvas/{n} (also page/{n}, annotation/{n}; live server only)
    /iiif/collections/top, /iiif/collections/by-{field}, /iiif/collections/{field}/{value}
    /iiif/activity/all-changes, /iiif/activity/page-{n}

No document URL is a prefix of another, so ``iiif-server manifests build --out`` can
write the same tree as plain files for static hosting. The ids of the resources a
manifest embeds (canvases, annotation pages, annotations) nest under it, so only the
live server answers them.

JSON-LD negotiation, ETag/304 and CORS as for info.json; ids carry the public
base URL of the request (configured, or as a trusted proxy says). Errors are
IIIFErrors, mapped to status by the HTTP edge (``http.status_for``), as for images;
validators and 304s come from there too (``http.validators``, ``http.is_fresh``).
"""

from __future__ import annotations

import hashlib
import json
import re

from flask import Blueprint, Response, request

from .. import current
from ..current import settings
from ..errors import NotFound
from ..http import is_fresh, json_media_type, status_line, validators
from . import discovery
from .build import EMBEDDED_KINDS, PRESENTATION_CONTEXT, embedded_resource, manifest_path
from .changes import ChangeLog

STREAM, PAGE = discovery.STREAM, discovery.PAGE
_EMBEDDED = re.compile(rf"(.+)/({'|'.join(EMBEDDED_KINDS)})/([1-9][0-9]{{0,5}})")

blueprint = Blueprint("presentation", __name__)


def _json(body: bytes, etag_seed: str, context: str) -> Response:
    etag = hashlib.sha1(etag_seed.encode()).hexdigest()[:32]
    cache_control = settings().manifests.cache_control
    headers = [*validators(etag, None, cache_control), ("Vary", "Accept")]  # no date: If-Modified-Since never counts
    if is_fresh(request.environ, etag):
        return Response(status=status_line(304), headers=headers)
    media_type = json_media_type(request.headers.get("Accept"), context, ld_by_default=True)  # 3.0-style APIs
    return Response(body, status=200, headers=headers, content_type=media_type)


def _document(path: str) -> Response:
    document = current.catalogue().current().documents.get(path)
    if document is None:
        raise NotFound(f"no {path.split('/')[1][:-1]} {path.split('/', 2)[2]!r}", "identifier")
    base = current.public_base()
    return _json(document.render(base), f"{document.etag}|{base}", PRESENTATION_CONTEXT)


@blueprint.route("/iiif/manifests/<path:inventory_number>")
def manifest(inventory_number: str) -> Response:
    path = manifest_path(inventory_number)
    if path not in current.catalogue().current().documents and (match := _EMBEDDED.fullmatch(inventory_number)):
        return _embedded(manifest_path(match[1]), f"{match[2]}/{match[3]}")
    return _document(path)


def _embedded(path: str, suffix: str) -> Response:
    """A canvas, annotation page or annotation, as its manifest embeds it, with its manifest's context
    (the Authorization Flow's first, when its images are restricted)."""
    document = current.catalogue().current().documents.get(path)
    base = current.public_base()
    manifest = json.loads(document.render(base)) if document else {}
    resource = embedded_resource(manifest, f"{base}/{path}/{suffix}") if document else None
    if document is None or resource is None:
        raise NotFound(f"no {EMBEDDED_KINDS[suffix.split('/')[0]]} {suffix!r} in manifest {path}", "identifier")
    body = discovery.to_bytes({"@context": manifest.get("@context", PRESENTATION_CONTEXT), **resource})
    return _json(body, f"{document.etag}|{base}|{suffix}", PRESENTATION_CONTEXT)


@blueprint.route("/iiif/collections/<path:name>")
def collection(name: str) -> Response:
    return _document(f"iiif/collections/{name}")


@blueprint.route(f"/{STREAM}")
def activity_stream() -> Response:
    log = _changelog()
    total = log.count()
    page_size = settings().manifests.page_size
    base = current.public_base()
    document = discovery.ordered_collection(base, STREAM, total, page_size)
    return _json(discovery.to_bytes(document), f"c|{total}|{page_size}|{base}", discovery.DISCOVERY_CONTEXT)


@blueprint.route(f"/{PAGE}<int:page>")
def activity_page(page: int) -> Response:
    log = _changelog()
    total = log.count()
    page_size = settings().manifests.page_size
    if page >= max(1, discovery.page_count(total, page_size)):
        raise NotFound(f"no activity page {page}", "page")
    activities = log.activities(page * page_size, page_size)
    base = current.public_base()
    document = discovery.ordered_collection_page(base, STREAM, page, activities, total, page_size)
    return _json(
        discovery.to_bytes(document),
        f"p|{page}|{total}|{page_size}|{len(activities)}|{base}",
        discovery.DISCOVERY_CONTEXT,
    )


def _changelog() -> ChangeLog:
    """The change log, after recording any change made since the last look."""
    catalogue = current.catalogue()
    if catalogue.changes is None:
        raise NotFound("change discovery is not enabled", "page")
    catalogue.current()
    return catalogue.changes
