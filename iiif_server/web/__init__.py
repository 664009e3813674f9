"""The operators' table at ``/status`` (``urls.STATUS``; it was the home page before the public catalogue,
``web/pages.py``, took ``/``): published manifests (with a viewer link) and images.

The image list is the anonymous visitor's: a hidden image is not listed, a restricted one's
thumbnail is no larger than its degraded view (the image endpoint enforces it anyway).
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, current_app, render_template_string, request

from ..image.model import ApiVersion
from ..image.service import ImageService, service_path
from ..presentation.build import manifest_path
from ..presentation.catalogue import Catalogue
from . import urls

blueprint = Blueprint("web", __name__)
THUMBNAIL = 400  # pixels, the long side of a preview on the index

_INDEX = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>iiif_server</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
td,th{padding:.3rem .8rem;text-align:left}tr:nth-child(even){background:#f4f4f4}</style></head>
<body><main><h1>iiif_server</h1>
<h2>Manifests</h2>
<p>{{ manifests|length }} published from the collection export.
Collections: <a href="{{ root }}/iiif/collections/top">top</a>;
changes for harvesters: <a href="{{ root }}/iiif/activity/all-changes">Change Discovery</a>.</p>
<table><tr><th>inventory number</th><th>title</th><th>manifest</th><th>viewer</th></tr>
{% for inventory, title, url in manifests %}<tr><td>{{ inventory }}</td><td>{{ title }}</td>
<td><a href="{{ url }}">manifest</a></td>
<td><a href="{{ root }}/viewer?manifest={{ url|urlencode }}">Mirador</a></td></tr>
{% endfor %}</table>
<h2>Images</h2>
<p>{{ count }} image(s) under the image root. Image API 3.0 at <code>/iiif/3/</code>, 2.1 at <code>/iiif/2/</code>.</p>
<table><tr><th>identifier</th><th>Image API 3.0</th><th>Image API 2.1</th><th>preview</th></tr>
{% for ident, v3, v2, thumb, note in rows %}<tr><td>{{ ident }}</td>
<td><a href="{{ v3 }}/info.json">info.json</a></td><td><a href="{{ v2 }}/info.json">info.json</a></td>
<td><a href="{{ v3 }}/full/!{{ thumb }},{{ thumb }}/0/default.jpg">thumbnail</a>{{ note }}</td></tr>
{% endfor %}</table></main></body></html>
"""


@blueprint.route(urls.STATUS)
def index() -> str:
    service: ImageService = current_app.extensions["iiif_server"]
    identifiers = service.source.list_identifiers()
    root = quote(request.script_root, safe="/")  # the prefix we are mounted under (SCRIPT_NAME, or a trusted proxy's)
    rows = []
    for identifier in identifiers:
        limit = service.public_view(identifier)
        if limit is None:
            continue  # hidden, or gone since it was listed
        thumb, note = THUMBNAIL, ""
        if limit:
            thumb, note = min(THUMBNAIL, limit), " (restricted: reduced view)"
        v3, v2 = (root + service_path(version, identifier) for version in (ApiVersion.V3, ApiVersion.V2))
        rows.append((identifier, v3, v2, thumb, note))
    catalogue: Catalogue = current_app.extensions["iiif_catalogue"]
    manifests = [
        (r.inventory_number, r.title.vi or r.title.en, f"{root}/{manifest_path(r.inventory_number)}")
        for r in catalogue.current().published
    ]
    return render_template_string(_INDEX, rows=rows, count=len(rows), manifests=manifests, root=root)
