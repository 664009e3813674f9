"""The image endpoint's logic, knowing no HTTP framework: identifier + request in, values out.

Order of work follows ARCHITECTURE.md: locate -> policy -> layout -> resolve ->
plan -> (cache) -> render. ``prepare`` does everything but the pixels, so the
HTTP layer can answer a conditional request (304) without rendering.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..access import Denied, OpenPolicy, Policy
from ..cache import Cache, NullCache
from ..errors import AccessDenied
from . import info as info_doc
from .model import ApiVersion, ImageRequest, Limits
from .parse import canonical_params
from .plan import Layout, RenderPlan, plan, resolve
from .render import Renderer
from .sources import FileSource, Located

RENDER_VERSION = "1"  # bump when rendering changes output bytes: invalidates ETags and caches


@dataclass(frozen=True, slots=True)
class Prepared:
    source: Located
    plan: RenderPlan
    canonical: str  # region/size/rotation/quality.format
    etag: str


def service_path(version: ApiVersion, identifier: str) -> str:
    """``/iiif/{v}/{identifier}`` with the identifier percent-encoded, ``/`` included (3.0 §2)."""
    return f"/iiif/{version.value}/{quote(identifier, safe='')}"


class ImageService:
    def __init__(
        self,
        source: FileSource,
        renderer: Renderer,
        limits: Limits,
        default_tile_size: int,
        preferred_formats: tuple[str, ...] = (),
        cache: Cache | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.source = source
        self.renderer = renderer
        self.limits = limits
        self.default_tile_size = default_tile_size
        self.preferred_formats = preferred_formats
        self.cache: Cache = cache or NullCache()
        self.policy: Policy = policy or OpenPolicy()
        options = renderer.options
        self._settings_tag = f"{RENDER_VERSION}:{options.jpeg_quality}:{options.webp_quality}:{options.png_compression}"

    def locate(self, identifier: str) -> tuple[Located, Layout]:
        source = self.source.locate(identifier)
        decision = self.policy.decide(identifier)
        if isinstance(decision, Denied):
            raise AccessDenied(decision.reason, "identifier")
        return source, self.renderer.layout(source)

    def info(self, version: ApiVersion, identifier: str, base_url: str) -> tuple[Located, dict[str, Any]]:
        source, layout = self.locate(identifier)
        document = info_doc.build_info(
            version,
            base_url + service_path(version, identifier),
            layout,
            self.limits,
            self.default_tile_size,
            self.preferred_formats,
        )
        return source, document

    def prepare(self, request: ImageRequest) -> Prepared:
        source, layout = self.locate(request.identifier)
        resolved = resolve(request, layout.width, layout.height, self.limits)
        canonical = canonical_params(
            request, resolved.region, resolved.size, (layout.width, layout.height), resolved.max_size
        )
        digest = hashlib.sha1(
            f"{source.fingerprint}|{request.version.value}|{canonical}|{self._settings_tag}".encode()
        ).hexdigest()
        return Prepared(source, plan(request, resolved, layout), canonical, digest[:32])

    def render(self, prepared: Prepared) -> bytes:
        key = f"{prepared.source.identifier}|{prepared.etag}"
        body = self.cache.get(key)
        if body is None:
            body = self.renderer.render(prepared.source, prepared.plan)
            self.cache.put(key, body)
        return body
