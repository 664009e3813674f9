"""What a Flask route reads from the running app: its settings, services and the request's public base URL.

One place, so every page, manifest and oEmbed answer names this server the same way (the configured
``[server] public_base_url``, else the request's own host; a client's forwarded headers count only
from ``trusted_proxies``, which ``forwarded.py`` applied before the request got here).
"""

from __future__ import annotations

from flask import current_app, request

from .config import Settings
from .http import base_url
from .image.service import ImageService
from .presentation.catalogue import Catalogue
from .web.search import CatalogueSearch, SearchIndex


def settings() -> Settings:
    found: Settings = current_app.config["IIIF_SETTINGS"]
    return found


def public_base() -> str:
    """``scheme://host[:port][/prefix]`` of this server as the client should address it."""
    return base_url(request.environ, settings().server.public_base_url)


def image_service() -> ImageService:
    found: ImageService = current_app.extensions["iiif_server"]
    return found


def search_index() -> SearchIndex:
    """The published records of the catalogue's current snapshot, searchable and by key (web/search.py)."""
    found: CatalogueSearch = current_app.extensions["iiif_search"]
    return found.index()


def catalogue() -> Catalogue:
    found: Catalogue = current_app.extensions["iiif_catalogue"]
    return found
