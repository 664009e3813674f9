"""Flask blueprint for ``/iiif/3/...`` and ``/iiif/2/...``: the only place image responses are built.

HTTP per Image API 3.0 §6-7: 303 from the base URI to info.json, JSON-LD
content negotiation, canonical and profile Link headers, ETag/Last-Modified
with 304 answered before any pixel is rendered.
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, current_app, redirect, request
from flask.blueprints import BlueprintSetupState
from werkzeug.http import http_date
from werkzeug.routing import PathConverter
from werkzeug.wrappers import Response

from ..errors import AccessDenied, IIIFError, ImageDecodeError, InvalidRequest, NotFound
from .model import ApiVersion, ImageRequest
from .parse import BaseUriRequest, InfoRequest, parse_path
from .service import ImageService, service_path

blueprint = Blueprint("iiif_image", __name__)


class AnyPath(PathConverter):
    """Werkzeug's ``path``, but matching newlines too, so they reach the parser and get a 400."""

    regex = r"[^/][\s\S]*?"


@blueprint.record_once
def _register_converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters["anypath"] = AnyPath


#: Image API 3.0 §7.3. Looked up along the error's MRO, most specific first.
STATUS: dict[type[IIIFError], int] = {
    InvalidRequest: 400,
    AccessDenied: 403,
    NotFound: 404,
    ImageDecodeError: 422,
}


def status_for(error: IIIFError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def base_url() -> str:
    """Public scheme://host[/prefix]: configured, else as the (proxied) request says."""
    configured: str = current_app.config["IIIF_PUBLIC_BASE_URL"]
    return configured or request.url_root.rstrip("/")


@blueprint.route("/iiif/<any('2','3'):api>/<anypath:rest>", methods=["GET", "HEAD"])
def iiif(api: str, rest: str) -> Response:
    version = ApiVersion(api)
    service: ImageService = current_app.extensions["iiif_server"]
    parsed = parse_path(version, rest)
    if isinstance(parsed, BaseUriRequest):
        service.locate(parsed.identifier)
        response = redirect(base_url() + service_path(version, parsed.identifier) + "/info.json", code=303)
        return response
    if isinstance(parsed, InfoRequest):
        return _info(service, version, parsed.identifier)
    return _image(service, parsed)


def _info(service: ImageService, version: ApiVersion, identifier: str) -> Response:
    source, body = service.info(version, identifier, base_url())
    etag = hashlib.sha1(body).hexdigest()[:32]
    wants_ld = request.accept_mimetypes.quality("application/ld+json") > request.accept_mimetypes.quality(
        "application/json"
    )
    media_type = f'application/ld+json;profile="{version.context}"' if wants_ld else "application/json"
    response = _conditional(etag, source.mtime) or Response(body, content_type=media_type)
    response.headers["Link"] = f'<{version.profile_uri}>;rel="profile"'
    response.vary.add("Accept")
    return _cacheable(response, etag, source.mtime)


def _image(service: ImageService, parsed: ImageRequest) -> Response:
    prepared = service.prepare(parsed)
    canonical = f"{base_url()}{service_path(parsed.version, parsed.identifier)}/{prepared.canonical}"
    response = _conditional(prepared.etag, prepared.source.mtime)
    if response is None:
        response = Response(service.render(prepared), content_type=parsed.format.media_type)
    response.headers["Link"] = f'<{canonical}>;rel="canonical", <{parsed.version.profile_uri}>;rel="profile"'
    return _cacheable(response, prepared.etag, prepared.source.mtime)


def _conditional(etag: str, mtime: float) -> Response | None:
    """A 304 if the client's copy is current (RFC 9110 §13.2.2: If-None-Match wins)."""
    if request.if_none_match:
        fresh = request.if_none_match.contains(etag) or request.if_none_match.star_tag
    elif request.if_modified_since:
        fresh = int(mtime) <= request.if_modified_since.timestamp()
    else:
        return None
    return Response(status=304) if fresh else None


def _cacheable(response: Response, etag: str, mtime: float) -> Response:
    response.set_etag(etag)
    response.headers["Last-Modified"] = http_date(int(mtime))
    response.headers["Cache-Control"] = current_app.config["IIIF_CACHE_CONTROL"]
    return response
