"""The image endpoint's logic, knowing no HTTP framework: identifier + request in, values out.

Order of work follows ARCHITECTURE.md: locate -> policy -> layout -> resolve ->
plan -> (cache) -> render. The policy's decision travels with the request: it is asked anonymously,
and only when that is not ``Allowed`` are the request's credentials (``who``: access/credentials.py)
looked at, so a public image never costs a cookie's parsing; a client whose levels allow a restricted
image is ``Authorised`` (full resolution, its answers private). A hidden image is a 404
like a missing one, a degraded one (access/tiered.py) is resolved and checked against its degraded
scale (``plan.within_degraded``: 401 beyond it), and its ETag, derivative key and prepared entry
carry the decision, so bytes made for one tier never answer another. The preview tier
(``<identifier>~preview``) is an image of its own at the degraded size (image/tier.py): its info.json
describes that size, and its image requests, in its pixels, are translated into the request on the
master that the degraded path renders. The layout is resolved
once, in ``locate`` (``Inspector``), and travels with the prepared request (``Inspected``) to
the pass-through readers and the renderer, which never look it up again. ``prepare`` does
everything but the pixels, so the HTTP layer can answer a conditional request (304) without
rendering; it also prices the render (``plan.pixel_cost``), and a heavy one that misses every cache
renders in the worker's ``Lane`` (image/lanes.py). A render over the request budgets
(image/budget.py: decoded pixels, estimated peak memory) is refused there, before any pixel.

``fast=True`` (the ASGI edge's event loop) answers only from what this worker holds in
memory: known paths and layouts, open pass-through readers (one ``pread`` from the page
cache), the memory tier. Anything else raises ``WouldBlock`` and the request moves to a
thread; the same code runs, so both ways give the same answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..access import ALLOWED, Allowed, Authorised, Decision, Degraded, Denied, OpenPolicy, Policy
from ..access.endpoints import DEGRADED_TIER
from ..cache import Cache, NullCache, cache_key
from ..cache.flight import Abandoned, Produce, SingleFlight
from ..errors import AccessDenied, AuthorizationRequired, InvalidRequest, NotFound, WouldBlock
from ..lru import LRU
from ..metrics import PASS_THROUGH, RENDER, note_tier, noted_tier
from . import budget as budgets
from . import info as info_doc
from .budget import Budget
from .inspector import Inspected, Inspector, SourceLayout
from .lanes import Lane
from .model import ApiVersion, Format, ImageRequest, Limits, Max
from .parse import canonical_params
from .plan import RenderPlan, Resolved, degraded_limits, pixel_cost, plan, resolve, resolve_region, within_degraded
from .readers import ReaderPool
from .render import Renderer
from .sources import ImageSource, Located
from .tier import tier_layout, tier_limits, to_master

if TYPE_CHECKING:
    from ..access.credentials import Grant

RENDER_VERSION = "2"  # bump when rendering changes output bytes: invalidates ETags and caches


@dataclass(frozen=True, slots=True)
class Prepared:
    source: Inspected  # the located file and its layout, resolved once for this request
    plan: RenderPlan
    canonical: str  # region/size/rotation/quality.format
    etag: str
    cost: int  # pixels decoded + produced if rendered (plan.pixel_cost)
    degraded: int = 0  # the degraded view's long side this was checked against; 0: not degraded


#: The request's credentials as a grant, asked only for an image that is not public; ``fast``: from
#: memory only (else ``WouldBlock``). None: the request is anonymous.
Who = Callable[[bool], "Grant | None"]

#: The authorization services of a restricted image's info.json, by base URL and identifier
#: (access/describe.py ``auth_services``); None: the server describes none.
Describe = Callable[[str, str], list[dict[str, Any]]]

PREPARED_CACHE_SIZE = 16384  # entries of a few hundred bytes: the hot tiles of a busy worker


def split_tier(identifier: str) -> tuple[str, bool]:
    """``(identifier, False)``, or for ``<identifier>~preview`` (Auth 1.0 §3.2: each tier its own
    identifier) ``(<identifier>, True)``. One suffix only: what remains is an image's identifier as
    any other, never a tier again, so a tier can only narrow what its image gives."""
    if identifier.endswith(DEGRADED_TIER):
        return identifier[: -len(DEGRADED_TIER)], True
    return identifier, False


def service_path(version: ApiVersion, identifier: str) -> str:
    """``/iiif/{v}/{identifier}`` with the identifier percent-encoded, ``/`` included (3.0 §2)."""
    return f"/iiif/{version.value}/{quote(identifier, safe='')}"


class ImageService:
    def __init__(
        self,
        source: ImageSource,
        inspector: Inspector,
        renderer: Renderer,
        readers: ReaderPool,
        limits: Limits,
        default_tile_size: int,
        preferred_formats: tuple[str, ...] = (),
        cache: Cache | None = None,
        flight: SingleFlight | None = None,
        policy: Policy | None = None,
        lane: Lane | None = None,
        heavy_pixels: int = 0,
        budget: Budget | None = None,
        describe: Describe | None = None,
    ) -> None:
        self.source = source
        self.inspector = inspector
        self.renderer = renderer
        self.readers = readers
        self.limits = limits
        self.default_tile_size = default_tile_size
        self.preferred_formats = preferred_formats
        self.cache: Cache = cache or NullCache()
        self.flight = flight or SingleFlight(self.cache)
        self.policy: Policy = policy or OpenPolicy()
        self.lane = lane  # None: every render runs at once
        self.heavy_pixels = heavy_pixels
        self.budget = budget or Budget()
        self.describe = describe
        options = renderer.options
        self._watermark_tag = renderer.watermark.tag if renderer.watermark is not None else "-"
        self._settings_tag = f"{RENDER_VERSION}:{options.jpeg_quality}:{options.webp_quality}:{options.png_compression}"
        # Only AVIF's own keys carry its settings, so adding them left every other format's ETag unchanged.
        self._avif_tag = f":a{options.avif_quality}:{options.avif_effort}"
        info_inputs = f"{limits}|{default_tile_size}|{preferred_formats}"
        self._info_tag = hashlib.sha1(info_inputs.encode()).hexdigest()[:12]
        # What ``prepare`` computed, by request and source file: a hot tile's geometry, canonical
        # form and ETag are pure functions of both, and cost more than its pass-through bytes.
        self._prepared: LRU[tuple[ImageRequest, Located] | tuple[ImageRequest, Located, int], Prepared] = LRU(
            PREPARED_CACHE_SIZE
        )

    def public_view(self, identifier: str) -> int | None:
        """What anyone may see of an image, with no credentials: None (hidden, or no such image), 0 (all
        of it), or the long side of its degraded view. The pages, embeds and oEmbed answers show no more."""
        try:
            decision = self.policy.decide(self.source.locate(identifier))
        except (NotFound, InvalidRequest):
            return None
        if isinstance(decision, Denied):
            return None
        return decision.max_size if isinstance(decision, Degraded) else 0

    def locate(self, identifier: str, fast: bool = False, who: Who | None = None) -> tuple[Located, SourceLayout]:
        """The file, checked against the policy, and its layout: resolved once per request."""
        source, found, _ = self.access(identifier, fast, who)
        return source, found

    def access(
        self, identifier: str, fast: bool = False, who: Who | None = None
    ) -> tuple[Located, SourceLayout, Decision]:
        """``locate``, with the policy's decision for this client: Allowed, Authorised or Degraded
        (else raised)."""
        image, tier = split_tier(identifier)
        source = self.source.known(image) if fast else self.source.locate(image)
        if source is None or (fast and self.policy.stale()):
            raise WouldBlock
        decision = self.policy.decide(source)
        if tier:  # the preview tier of a degraded image: its degraded view, whoever asks
            if not isinstance(decision, Degraded):  # a public image has one tier; a hidden one none
                raise NotFound(f"no image {identifier!r}", "identifier")
        elif decision is not ALLOWED and who is not None:
            decision = self._authorise(source, decision, who(fast))
        if isinstance(decision, Denied):
            if decision.conceal:  # the same answer as for a file that does not exist
                raise NotFound(f"no image {identifier!r}", "identifier")
            raise AccessDenied(decision.reason, "identifier")
        found = self.inspector.known_layout(source) if fast else self.inspector.layout(source)
        if found is None:
            raise WouldBlock
        return source, found, decision

    def _authorise(self, source: Located, anonymous: Decision, grant: Grant | None) -> Decision:
        """``Authorised`` if the grant's levels allow what anonymous clients are refused or degraded."""
        if grant is None or not grant.levels or not isinstance(anonymous, Degraded | Denied):
            return anonymous
        if isinstance(self.policy.decide(source, grant.levels), Allowed):
            return Authorised(grant.user, anonymous)
        return anonymous

    def info(
        self, version: ApiVersion, identifier: str, base_url: str, fast: bool = False, who: Who | None = None
    ) -> tuple[Located, bytes | None, Decision]:
        """The info.json document as bytes, cached: it depends on the file, the base URL, settings and
        the decision (a degraded view's document offers only what that client may have).

        None: this client may have only the image's lower tier, whose document is another (Auth 1.0
        §3.2: the HTTP layer redirects there). An image that is not public (its anonymous decision is not
        ``Allowed``) carries the authorization services in every tier, for every client: a viewer finds
        the flow where it starts, and a logged-in one its logout."""
        source, found, decision = self.access(identifier, fast, who)
        degraded = decision.max_size if isinstance(decision, Degraded) else 0
        image, tier = split_tier(identifier)
        if degraded and not tier:
            return source, None, decision
        restricted = decision is not ALLOWED and self.describe is not None
        base_tag = hashlib.sha1(base_url.encode()).hexdigest()[:12]
        # ":p": the tier described at its own size (image/tier.py), never a document of the master's size
        what = (f":p{degraded}" if degraded else "") + (":s" if restricted else "")
        key = cache_key(identifier, f"i{version.value}:{base_tag}:{source.fingerprint}:{self._info_tag}{what}")
        body = self._peek(key) if fast else self.cache.get(key)
        if body is None:
            services = None
            if restricted and self.describe is not None:
                services = self.describe(base_url, image)
            layout = tier_layout(found.layout, degraded) if tier else found.layout
            document = info_doc.build_info(
                version,
                base_url + service_path(version, identifier),
                layout,
                tier_limits(self.limits, (layout.width, layout.height)) if tier else self.limits,
                self.default_tile_size,
                self.preferred_formats,
                not tier,  # the tier never upscales: never sharper than itself
                services,
            )
            body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
            self.cache.put(key, body)
        return source, body, decision

    def probe(self, identifier: str, who: Who | None = None) -> int:
        """The status the full-resolution image would get with these credentials (Auth 2.0 §5.2), by
        the image requests' own decision: 200 or 401 (a hidden or missing image raises ``NotFound``,
        as the image would; a tier has no probe: it is open to all)."""
        if split_tier(identifier)[1]:
            raise NotFound(f"no image {identifier!r}", "identifier")
        try:
            _, _, decision = self.access(identifier, False, who)
        except AccessDenied:
            return 403
        return 401 if isinstance(decision, Degraded) else 200

    def prepare(self, request: ImageRequest, fast: bool = False, who: Who | None = None) -> Prepared:
        return self.prepare_for(request, fast, who)[0]

    def prepare_for(
        self, request: ImageRequest, fast: bool = False, who: Who | None = None
    ) -> tuple[Prepared, Decision]:
        """``prepare``, with the decision it was prepared under (Authorised answers are private, audited)."""
        source, found, decision = self.access(request.identifier, fast, who)
        degraded = decision.max_size if isinstance(decision, Degraded) else 0
        # the source's fingerprint is in the key, and a degraded view's size: a tier never sees another's
        key = (request, source, degraded) if degraded else (request, source)
        known = self._prepared.get(key)
        if known is not None:
            return known, decision
        if split_tier(request.identifier)[1]:
            prepared = self._prepare_tier(request, Inspected.of(source, found), degraded)
        else:
            prepared = self._prepare(request, Inspected.of(source, found), degraded)
        self._prepared.put(key, prepared)
        return prepared, decision

    def beyond_anonymous(self, request: ImageRequest, prepared: Prepared, decision: Decision) -> bool:
        """Does this answer show more than an anonymous client may see? (what the audit records)"""
        if not isinstance(decision, Authorised):
            return False
        if isinstance(decision.anonymous, Denied):
            return True  # anonymous clients get nothing of it
        layout = prepared.source.found.layout
        cap = budgets.max_pixels(self.budget, request, layout)
        resolved = resolve(request, layout.width, layout.height, self.limits, cap)
        return not within_degraded(resolved, layout.width, layout.height, decision.anonymous.max_size)

    def _prepare(self, request: ImageRequest, source: Inspected, degraded: int = 0) -> Prepared:
        layout = source.found.layout
        cap = budgets.max_pixels(self.budget, request, layout)
        resolved = resolve(request, layout.width, layout.height, self.limits, cap)
        tier = ""
        if degraded:
            resolved = self._degrade(request, layout.width, layout.height, cap, degraded, resolved)
            tier = f"|d{degraded}|w{self._watermark_tag}"  # the mark's settings: a new text, new ETags
        canonical = canonical_params(
            request, resolved.region, resolved.size, (layout.width, layout.height), resolved.max_size
        )
        digest = hashlib.sha1(
            # ``max`` in the canonical form depends on the limits: key on the resolved pixels too
            f"{source.fingerprint}|{request.version.value}|{canonical}|{resolved.region}|{resolved.size}|"
            f"{self._settings_tag}{self._avif_tag if request.format is Format.AVIF else ''}{tier}".encode()
        ).hexdigest()
        chosen = plan(request, resolved, layout)
        if degraded:
            chosen = replace(chosen, degraded=True)
        budgets.check(chosen, layout, self.budget)  # before any pixel is decoded
        return Prepared(source, chosen, canonical, digest[:32], pixel_cost(chosen, layout), degraded)

    def _prepare_tier(self, request: ImageRequest, source: Inspected, degraded: int) -> Prepared:
        """A request at the preview tier, in tier pixels (image/tier.py), prepared as the request on the
        master it stands for, through the degraded path (watermark, never passed through, its checks
        kept as a second safety net). Its canonical form is the tier's, and so its ETag and cache key."""
        layout = source.found.layout
        cap = budgets.max_pixels(self.budget, request, layout)
        master = (layout.width, layout.height)
        translated = to_master(request, source.identifier, master, degraded, self.limits, cap)
        prepared = self._prepare(translated.master, source, degraded)
        etag = hashlib.sha1(f"{prepared.etag}|{DEGRADED_TIER}|{translated.canonical}".encode()).hexdigest()
        return replace(prepared, canonical=translated.canonical, etag=etag[:32])

    def _degrade(
        self, request: ImageRequest, width: int, height: int, cap: int, max_size: int, resolved: Resolved
    ) -> Resolved:
        """``resolved`` within the degraded view: ``max`` is "the largest you may have", so it shrinks
        to the degraded scale; anything else sharper than it is 401."""
        if isinstance(request.size, Max) and not within_degraded(resolved, width, height, max_size):
            region = resolve_region(request, width, height)
            limits = degraded_limits(region, width, height, max_size, self.limits)
            resolved = resolve(request, width, height, limits, cap)
        if not within_degraded(resolved, width, height, max_size):
            raise AuthorizationRequired(
                f"without authorisation this image is available up to {max_size} pixels on its long side", "size"
            )
        return resolved

    def heavy(self, prepared: Prepared) -> bool:
        """Whether rendering ``prepared`` needs a slot in the lane (it may still be answered from a cache)."""
        return self.lane is not None and prepared.cost > self.heavy_pixels

    def render(self, prepared: Prepared, fast: bool = False, cancelled: Abandoned | None = None) -> bytes:
        """A stored tile as is, else cached bytes, else rendered once however many ask at once.

        Pass-through of a local file costs microseconds: cheaper than a cache lookup, so it is not
        cached. A stored tile in an object store (S3, HTTP) costs a ranged GET, so it goes through
        the caches like a render: read once, then served by every worker and node from memory or
        Redis. Only the single flight's leader of a heavy render takes a lane slot, after every
        cache missed: its waiters, like cache hits, hold none. ``cancelled()`` turns true when this
        request's client has gone: the render stops once every client that waits for it has (flight.py).
        """
        remote = prepared.source.blob is not None
        if not remote:
            stored = self.readers.passthrough(prepared.source, prepared.plan, opened_only=fast)
            if stored is not None:
                note_tier(PASS_THROUGH)
                return stored
        key = cache_key(prepared.source.identifier, f"d:{prepared.etag}")
        body = self._peek(key) if fast else self.cache.get(key)  # notes the tier that answered
        if body is None and remote and (stored := self.readers.passthrough(prepared.source, prepared.plan)):
            note_tier(PASS_THROUGH)
            self.cache.put(key, stored)
            return stored
        if body is None:
            note_tier(RENDER)  # or a shared-tier hit, if another host renders it meanwhile
            body = self.flight.run(key, self._producer(prepared), cancelled)
            if noted_tier() is None:  # the flight looked again under the Redis lock, missed (noted None), rendered
                note_tier(RENDER)
        return body

    def stored(self, prepared: Prepared, fast: bool = False) -> bytes | None:
        """The body if it costs no render: a stored tile or a cached derivative; else None.

        What a HEAD needs for its Content-Length: a HEAD never renders (RFC 9110 §9.3.2 lets it
        leave Content-Length out), so asking for headers cannot cost what the image would.
        """
        if prepared.source.blob is None:
            found = self.readers.passthrough(prepared.source, prepared.plan, opened_only=fast)
            if found is not None:
                return found
        key = cache_key(prepared.source.identifier, f"d:{prepared.etag}")
        return self._peek(key) if fast else self.cache.get(key)  # inline: a miss moves to a thread

    def _peek(self, key: str) -> bytes:
        """The memory tier's copy, else ``WouldBlock``: the other tiers and rendering need a thread."""
        peek = getattr(self.cache, "peek", None)  # TieredCache; a NullCache holds nothing to peek at
        body = peek(key) if peek is not None else None
        if body is None:
            raise WouldBlock
        return body

    def _producer(self, prepared: Prepared) -> Produce:
        def produce(abandoned: Abandoned) -> bytes:
            return self.renderer.render(prepared.source, prepared.plan, abandoned)

        if self.lane is not None and self.heavy(prepared):
            lane = self.lane
            return lambda abandoned: lane.run(lambda: produce(abandoned))
        return produce
