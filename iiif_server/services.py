"""The composition root: every service built from ``Settings``, in one place.

The app (``create_app``), the CLI's commands, the RQ worker and ingest notifications all
build what they need here, so a setting means the same thing in each of them. Built lazily
and once per ``Services``: a manifest build gets caches, files, inspector and catalogue, but
no renderer; a cache purge only the caches.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from .access import Policy
from .access.accounts import Accounts, accounts_for
from .access.ambient import Ambient
from .access.audit import Audit, audit_path
from .access.credentials import Credentials
from .access.describe import auth_services
from .access.levels import LevelMap
from .access.sessions import Sessions
from .access.tiered import TieredPolicy
from .access.tokens import Tokens
from .cache.build import MB, Caches, build_caches
from .cache.disk import DiskCache
from .config import Settings
from .health import Readiness, images_readable, manifests_built, redis_reachable, store_reachable
from .image.budget import Budget
from .image.http_source import HttpConfig, HttpSource, HttpStore
from .image.inspector import Inspector
from .image.lanes import Lane
from .image.model import Limits
from .image.readers import ReaderPool
from .image.render import EncodeOptions, Renderer, configure_vips
from .image.s3 import S3Source, S3Store, s3_config
from .image.service import ImageService
from .image.sources import FileSource, ImageSource
from .image.watermark import Watermark
from .presentation.catalogue import Catalogue, change_log
from .presentation.restricted import ImageAccess
from .replay import Replay
from .throttle import Throttle
from .web.assets import Assets
from .web.search import CatalogueSearch


class Services:
    """``memory_cache=False`` for short-lived processes (CLI, worker jobs): no memory tier to fill."""

    def __init__(self, settings: Settings, memory_cache: bool = True) -> None:
        self.settings = settings
        self.memory_cache = memory_cache

    @cached_property
    def caches(self) -> Caches:
        server, lanes = self.settings.server, self.settings.lanes
        render_limit = server.render_timeout + (lanes.heavy_wait if lanes.heavy_pixels else 0.0)
        return build_caches(self.settings.cache, memory=self.memory_cache, render_limit=render_limit)

    @cached_property
    def source(self) -> ImageSource:
        images = self.settings.images
        if images.source == "file":
            return FileSource(images.root, images.extensions, index_names=images.index_names)
        remote = self.s3_source if images.source == "s3" else self.http_source
        remote.follow_purges(self.caches.tiered.memory_generation)  # a purge shows a replacement at once
        return remote

    @cached_property
    def s3_source(self) -> S3Source:
        """Masters in a bucket (``[images] source = "s3"``); boto3 is imported on first request."""
        s3 = self.settings.s3
        config = s3_config(s3)
        chunks = DiskCache(s3.cache_dir, s3.cache_max_mb * MB) if s3.cache_max_mb else None
        store = S3Store(config, chunks, int(s3.chunk_mb * MB))
        return S3Source(store, self.settings.images.extensions, s3.head_seconds, s3.miss_seconds)

    @cached_property
    def http_source(self) -> HttpSource:
        """Masters on a partner's HTTP(S) server (``[images] source = "http"``), read by ranges."""
        http = self.settings.http_source
        config = HttpConfig(
            http.base_url, http.allowed_hosts, http.connect_timeout, http.read_timeout, http.retries, http.max_bytes
        )
        chunks = DiskCache(http.cache_dir, http.cache_max_mb * MB) if http.cache_max_mb else None
        store = HttpStore(config, chunks, int(http.chunk_mb * MB))
        return HttpSource(store, self.settings.images.extensions, http.head_seconds, http.miss_seconds)

    @cached_property
    def admin_throttle(self) -> Throttle:
        admin = self.settings.admin
        return Throttle(admin.max_failures, admin.block_seconds)

    @cached_property
    def accounts(self) -> Accounts:
        return accounts_for(self.settings)

    @cached_property
    def sessions(self) -> Sessions:
        return Sessions(self.accounts, self.settings.access.session_hours * 3600)

    @cached_property
    def tokens(self) -> Tokens:
        """IIIF access tokens (``Authorization: Bearer``), tied to a session or an ambient grant."""
        return Tokens(self.accounts, self.sessions, self.settings.access.token_seconds)

    @cached_property
    def ambient(self) -> Ambient:
        """The ``external`` pattern: a staff network, or an account a trusted proxy's header names."""
        access = self.settings.access
        return Ambient(self.accounts, access.external_networks, access.external_levels, access.external_header)

    @cached_property
    def credentials(self) -> Credentials:
        """A request's session cookie, access token or ambient aspect as levels, cached briefly per worker."""
        return Credentials(
            self.sessions,
            self.settings.access.session_cache_seconds,
            bearer=self.tokens.grant,
            ambient=self.ambient,
            kiosk_networks=self.settings.access.kiosk_networks,
        )

    @cached_property
    def audit(self) -> Audit:
        """The audit log's writer: one per process (its writer thread starts on the first record)."""
        return Audit(audit_path(self.settings), self.settings.access.audit_days)

    @cached_property
    def login_throttle(self) -> Throttle:
        """Wrong passwords, counted by client address and by account name (``access/login.py``)."""
        access = self.settings.access
        return Throttle(access.login_max_failures, access.login_block_seconds)

    @cached_property
    def inspector(self) -> Inspector:
        return Inspector(max_untiled_pixels=self.settings.images.max_untiled_pixels, metadata=self.caches.tiered)

    @cached_property
    def renderer(self) -> Renderer:
        settings = self.settings
        configure_vips(settings.vips.concurrency)
        output = settings.output
        options = EncodeOptions(
            output.jpeg_quality, output.webp_quality, output.png_compression, output.avif_quality, output.avif_effort
        )
        access = settings.access
        return Renderer(
            options,
            render_timeout=settings.server.render_timeout,
            decoded_levels_bytes=settings.cache.decoded_levels_mb * MB,
            watermark=Watermark.from_settings(access.watermark_text, access.watermark_logo, access.watermark_opacity),
        )

    @cached_property
    def readers(self) -> ReaderPool:
        return ReaderPool(self.settings.images.handle_cache_size)

    @cached_property
    def policy(self) -> Policy:
        """Access levels from the collection export (``[access]``), re-read when it changes."""
        return TieredPolicy(self.settings.access, self._levels())

    def _levels(self) -> LevelMap:
        settings = self.settings
        return LevelMap(settings.access, settings.manifests.source, settings.manifests.columns, self.source)

    @cached_property
    def replay(self) -> Replay | None:
        """Whole answers the ASGI edge may send again (``[cache] replay_mb``; 0: none)."""
        server = self.settings.server
        if not self.settings.cache.replay_mb:
            return None
        return Replay(
            self.settings.cache.replay_mb * MB,
            self.policy,
            self.caches.tiered.memory_generation,
            self.source,
            trusted_proxies=bool(server.trusted_proxies and server.proxy_hops),
        )

    @cached_property
    def lane(self) -> Lane | None:
        lanes = self.settings.lanes
        return Lane(lanes.heavy_concurrency, lanes.heavy_queue, lanes.heavy_wait) if lanes.heavy_pixels else None

    @cached_property
    def image_service(self) -> ImageService:
        settings = self.settings
        images = settings.images
        return ImageService(
            source=self.source,
            inspector=self.inspector,
            renderer=self.renderer,
            readers=self.readers,
            limits=Limits(images.max_width, images.max_height, images.max_area),
            default_tile_size=images.default_tile_size,
            preferred_formats=settings.output.preferred_formats,
            cache=self.caches.tiered,
            flight=self.caches.flight,
            policy=self.policy,
            lane=self.lane,
            heavy_pixels=settings.lanes.heavy_pixels,
            budget=Budget(
                images.max_request_mb * MB, images.max_decode_pixels, settings.cache.decoded_levels_mb * MB // 4
            ),
            describe=lambda base_url, identifier: auth_services(settings, base_url, identifier),
        )

    @cached_property
    def catalogue(self) -> Catalogue:
        """Manifests and collections on the configured image root and caches, as every process builds them."""
        manifests = self.settings.manifests
        return Catalogue(
            manifests,
            source=self.source,
            inspector=self.inspector,
            access=ImageAccess(self.settings, self._levels().snapshot),
            cache=self.caches.tiered,
            changes=change_log(manifests),
            records_changes=manifests.role == "writer",
        )

    @cached_property
    def search(self) -> CatalogueSearch:
        """The public site's search over the catalogue's published records."""
        return CatalogueSearch(self.catalogue.current)

    @cached_property
    def assets(self) -> Assets:
        """The site's fingerprinted static files, with the theme's logo ([site] logo)."""
        logo = self.settings.site.logo
        return Assets(extra={f"theme/logo{Path(logo).suffix.lower()}": Path(logo)} if logo else None)

    @cached_property
    def readiness(self) -> Readiness:
        if self.settings.images.source == "s3":
            checks = {"images": store_reachable(self.s3_source.store.reachable)}
        elif self.settings.images.source == "http":
            checks = {"images": store_reachable(self.http_source.store.reachable)}
        else:
            checks = {"images": images_readable(self.settings.images.root)}
        if self.caches.redis is not None:
            checks["redis"] = redis_reachable(self.caches.redis.ping)
        checks["manifests"] = manifests_built(
            self.settings.manifests.source, lambda: len(self.catalogue.current().documents)
        )
        return Readiness(checks)
