"""The public site's paths, in one table: pages link each other, the oEmbed and embed code build
them, tests request them. Paths are relative to the site root (prefix ``request.script_root``).

Inventory numbers and facet values are percent-encoded UTF-8 of their NFC form (what the export
holds after ``records.clean``), so a Vietnamese value reads correctly in a browser's address bar.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

HOME = "/"
SEARCH = "/search"
STATUS = "/status"  # the operators' table of manifests and images (was the home page)
OEMBED = "/oembed"
BROWSE = "/browse"
ITEMS = "/items"
EMBED = "/embed"
IMAGE_EMBED = "/embed/image"

#: Facets visitors browse and filter by: URL name -> record field (the collections' fields).
FACETS = {"type": "object_type", "site": "site", "period": "period", "rank": "heritage_rank"}


def _segment(value: str) -> str:
    return quote(unicodedata.normalize("NFC", value), safe="")


def item_path(inventory_number: str) -> str:
    return f"{ITEMS}/{_segment(inventory_number)}"


def embed_path(inventory_number: str) -> str:
    """The embeddable viewer of a published record's manifest (OpenSeadragon; ``?viewer=mirador``)."""
    return f"{EMBED}/{_segment(inventory_number)}"


def image_embed_path(identifier: str) -> str:
    """The embeddable viewer of one public image, by its Image API identifier."""
    return f"{IMAGE_EMBED}/{quote(unicodedata.normalize('NFC', identifier), safe='/')}"


def browse_path(facet: str, value: str | None = None) -> str:
    """``/browse/type`` (the values, with counts) or ``/browse/type/<value>`` (its records)."""
    if facet not in FACETS:
        raise ValueError(f"no facet {facet!r}")
    return f"{BROWSE}/{facet}" if value is None else f"{BROWSE}/{facet}/{_segment(value)}"
