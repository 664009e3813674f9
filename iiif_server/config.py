"""Typed settings: defaults in code -> config.toml -> IIIF_SERVER_<SECTION>_<KEY> variables.

This is the only module that reads ``os.environ``. Everything else receives a
frozen ``Settings`` (or a slice of it) from ``create_app`` or the CLI, so a
renderer can never depend on a setting its cache key does not know about.

pydantic validates types and rejects unknown keys; tomllib (stdlib) parses TOML.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .presentation.records import GROUPABLE, ColumnMap
from .presentation.vocabulary import FILE as VOCABULARY_FILE

ENV_PREFIX = "IIIF_SERVER_"
CONFIG_ENV = "IIIF_SERVER_CONFIG"  # path of the config file; not a setting itself
FORMATS = ("jpg", "png", "webp", "tif", "gif", "avif")


def _redis_url(value: str) -> str:
    """Empty (no Redis) or a URL redis-py can open."""
    if value and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return value


RedisUrl = Annotated[str, AfterValidator(_redis_url)]


def _networks(value: tuple[str, ...]) -> tuple[str, ...]:
    for entry in value:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
    return value


Networks = Annotated[tuple[str, ...], AfterValidator(_networks)]

ACCESS_NOTE_VI = (
    "Hình ảnh độ phân giải đầy đủ dành cho cán bộ bảo tàng và nhà nghiên cứu được cấp quyền. "
    "Vui lòng liên hệ bảo tàng để đề nghị quyền truy cập."
)
ACCESS_NOTE_EN = (
    "The full-resolution image is for museum staff and accredited researchers. "
    "Please contact the museum to request access."
)


def _origin(value: str) -> str:
    """``scheme://host[:port]``, as a browser's ``Origin`` header spells it."""
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or value != f"{parts.scheme}://{parts.netloc}":
        raise ValueError(f"{value!r} is not an origin (scheme://host[:port], no path or slash)")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8182, ge=1, le=65535)
    workers: int = Field(0, ge=0)  # 0: two per CPU core
    max_requests: int = Field(5_000_000, ge=0)
    threads: int = Field(4, ge=1)
    worker: Literal["gthread", "asgi"] = "asgi"  # asgi: uvicorn's worker, cheap answers on its event loop
    timeout: int = Field(60, ge=1)  # gunicorn's heartbeat timeout: a hung worker, not a slow request
    thread_nice: int = Field(10, ge=0, le=19)  # asgi: the threads' nice value above the event loop's
    header_timeout: float = Field(10.0, gt=0)  # seconds for a request's head to arrive whole; then 408 and closed
    max_connections: int = Field(1000, ge=1)  # per worker: idle and half-sent connections kept open at most
    render_timeout: float = Field(30.0, gt=0)  # seconds; then 503 + Retry-After, the thread is free again
    public_base_url: str = ""
    trusted_proxies: tuple[str, ...] = ()  # addresses/CIDRs whose Forwarded/X-Forwarded-* headers count
    proxy_hops: int = Field(1, ge=0)
    # the headers the trusted proxies write: the other kind, which a client can send through them, is ignored
    forwarded_header: Literal["x-forwarded", "forwarded"] = "x-forwarded"
    access_log: Literal["off", "combined", "json"] = "combined"

    @field_validator("public_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _networks(value)


class ImagesSettings(_Section):
    root: Path = Path("demo-images")
    extensions: tuple[str, ...] = (".tif", ".tiff", ".ptif", ".jpg", ".jpeg", ".png", ".webp")
    max_width: int = Field(65500, ge=0)  # JPEG's limit: every format but WebP (16383) can write it
    max_height: int = Field(0, ge=0)  # 0: as max_width (Image API 3.0 §5.3)
    max_area: int = Field(100_000_000, ge=0)
    max_decode_pixels: int = Field(400_000_000, ge=0)  # per request, from the level read; 0: none
    max_request_mb: int = Field(512, ge=0)  # estimated peak memory per render; 0: none
    default_tile_size: int = Field(512, ge=64, le=4096)
    max_untiled_pixels: int = Field(250_000_000, ge=0)
    handle_cache_size: int = Field(64, ge=0)
    index_names: int = Field(200_000, ge=0)
    source: Literal["file", "s3", "http"] = "file"  # where masters are: under root, [s3]'s bucket, [http_source]


class S3Settings(_Section):
    """Masters in an S3-compatible bucket (``[images] source = "s3"``). Credentials are never here:
    boto3's chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``~/.aws``, instance roles)."""

    bucket: str = ""
    prefix: str = ""  # key = prefix + identifier (+ an allowed extension)
    endpoint_url: str = ""  # "": AWS itself; else e.g. http://minio:9000
    region: str = ""  # "": boto3's chain (AWS_DEFAULT_REGION, ~/.aws/config)
    chunk_mb: float = Field(1.0, ge=0.0625, le=64)  # ranged reads for libvips go through chunks of this size
    cache_dir: Path = Path("s3-chunks")  # the chunk cache, shared by one host's workers; not inside [cache] disk_dir
    cache_max_mb: int = Field(2048, ge=0)  # its budget; 0: no chunk cache (every read a ranged GET)
    connect_timeout: float = Field(3.0, gt=0)
    read_timeout: float = Field(10.0, gt=0)
    retries: int = Field(2, ge=0)
    head_seconds: float = Field(60.0, ge=0)  # a located object is trusted this long, or until a purge
    miss_seconds: float = Field(5.0, ge=0)  # a missing key is remembered this long


class HttpSourceSettings(_Section):
    """Masters on a partner's HTTP(S) server (``[images] source = "http"``), read-only, by ranges."""

    base_url: str = ""  # the identifier a/b.tif is base_url + "a/b.tif"; must end with "/"
    allowed_hosts: tuple[str, ...] = ()  # the only hosts contacted (base_url's among them); redirects elsewhere refused
    max_bytes: int = Field(4_000_000_000, ge=1)  # a larger file is refused (422), never read
    chunk_mb: float = Field(1.0, ge=0.0625, le=64)
    cache_dir: Path = Path("http-chunks")
    cache_max_mb: int = Field(2048, ge=0)
    connect_timeout: float = Field(3.0, gt=0)
    read_timeout: float = Field(10.0, gt=0)
    retries: int = Field(2, ge=0)
    head_seconds: float = Field(60.0, ge=0)
    miss_seconds: float = Field(5.0, ge=0)


class OutputSettings(_Section):
    jpeg_quality: int = Field(85, ge=1, le=100)
    webp_quality: int = Field(80, ge=1, le=100)
    png_compression: int = Field(6, ge=0, le=9)
    avif_quality: int = Field(60, ge=1, le=100)
    avif_effort: int = Field(1, ge=0, le=9)  # AV1 is slow: 1 keeps a 256-px tile near 20 ms
    preferred_formats: tuple[str, ...] = ("jpg",)

    @field_validator("preferred_formats")
    @classmethod
    def _known_formats(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [f for f in value if f not in FORMATS]
        if unknown:
            raise ValueError(f"unknown format(s) {unknown}; choose from {list(FORMATS)}")
        return value


class HttpSettings(_Section):
    cache_control: str = "public, max-age=86400"
    cors_max_age: int = Field(86400, ge=0)


class LanesSettings(_Section):
    heavy_pixels: int = Field(4_000_000, ge=0)  # pixels decoded + produced above which a render is heavy; 0: off
    heavy_concurrency: int = Field(1, ge=1)  # heavy renders at once, per worker
    heavy_queue: int = Field(1, ge=0)  # heavy renders waiting for a slot, per worker; more: 503
    heavy_wait: float = Field(1.0, ge=0)  # seconds one may wait for a slot; then 503


class VipsSettings(_Section):
    concurrency: int = Field(1, ge=1)  # threads per libvips operation; many requests run in parallel anyway


class CacheSettings(_Section):
    memory_mb: int = Field(128, ge=0)
    replay_mb: int = Field(32, ge=0)
    decoded_levels_mb: int = Field(64, ge=0)
    disk_dir: Path = Path("cache")
    disk_max_mb: int = Field(2048, ge=0)
    redis_url: RedisUrl = ""
    redis_ttl: int = Field(7 * 86400, ge=1)
    redis_timeout: float = Field(0.5, gt=0)
    redis_prefix: str = "iiif:"
    wait: float = Field(0.0, ge=0)  # seconds waited for an identical render in progress; 0: its own limit
    lock_ttl: float = Field(10.0, gt=0)  # renewed every third of it while the render runs


class AdminSettings(_Section):
    token: str = ""
    max_failures: int = Field(5, ge=0)
    block_seconds: float = Field(60.0, gt=0)


#: What a level lets an anonymous client have: everything, a degraded view, or nothing (404).
Treatment = Literal["open", "degraded", "hidden"]


class AccessSettings(_Section):
    """Per-image access levels from the export's access column (``access/levels.py``), accounts,
    sessions, the login page and the audit log (``access/``)."""

    levels: dict[str, Treatment] = {"public": "open", "restricted": "degraded", "internal": "hidden"}
    default_level: str = "public"  # an image no record names: loose files stay served as before
    degraded_size: int = Field(1000, ge=16)  # the long side of a degraded image, in pixels
    check_interval: float = Field(1.0, ge=0)  # seconds between stats of the export per worker
    watermark_text: str = Field("Bản xem trước · Preview", max_length=200)  # on degraded renders; "": none
    watermark_logo: str = ""  # a PNG (with alpha) drawn above the text; "": none
    watermark_opacity: float = Field(0.5, gt=0, le=1)
    state_dir: str = ""  # the accounts and audit databases' folder; "": [manifests] state_dir
    session_hours: float = Field(8.0, gt=0)
    session_cache_seconds: float = Field(1.0, ge=0, le=60)  # a logout is seen by the image path within this
    cookie_path: str = "/"
    login_max_failures: int = Field(5, ge=0)  # per account and per address; 0: no limit
    login_block_seconds: float = Field(300.0, gt=0)
    audit_days: int = Field(0, ge=0)  # 0: audit records are kept forever
    # The IIIF Authorization Flow 2.0 and Authentication 1.0 services (docs/access.md)
    access_note_vi: str = Field(ACCESS_NOTE_VI, max_length=1000)  # how to request access (probe note, manifests)
    access_note_en: str = Field(ACCESS_NOTE_EN, max_length=1000)
    token_seconds: int = Field(3600, ge=60, le=86400)  # an access token's lifetime (never beyond its session)
    # origins, besides this server's own, that may receive access tokens
    token_origins: tuple[Annotated[str, AfterValidator(_origin)], ...] = ()
    kiosk_networks: Networks = ()  # gallery terminals: the kiosk access service grants kiosk_levels here
    kiosk_levels: tuple[str, ...] = ("restricted",)
    external_networks: Networks = ()  # staff networks: granted external_levels with no login
    external_header: str = ""  # a header set by a trusted proxy naming an authenticated staff member
    external_levels: tuple[str, ...] = ("restricted",)

    @field_validator("levels")
    @classmethod
    def _named(cls, value: dict[str, Treatment]) -> dict[str, Treatment]:
        bad = [name for name in value if not name or name != name.strip().lower()]
        if bad:
            raise ValueError(f"level names must be lower case, without spaces around: {bad}")
        return value

    @model_validator(mode="after")
    def _default_is_a_level(self) -> AccessSettings:
        if self.default_level not in self.levels:
            raise ValueError(f"default_level {self.default_level!r} is not one of the levels {sorted(self.levels)}")
        return self

    @field_validator("watermark_logo")
    @classmethod
    def _logo_exists(cls, value: str) -> str:
        if value and not Path(value).is_file():  # checked at start, not on the first degraded render
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("cookie_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or any(c in value for c in ";,\\ \t\r\n"):
            raise ValueError("must be a URL path starting with /")
        return value

    def state_path(self, manifests_state: Path) -> Path:
        return Path(self.state_dir) if self.state_dir else manifests_state


def _colour(value: str) -> str:
    """A CSS hex colour (``#7a2e1d`` or ``#fff``): anything else could break out of the style sheet."""
    import re

    if not re.fullmatch(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})", value):
        raise ValueError(f"{value!r} is not a hex colour such as #7a2e1d")
    return value.lower()


Colour = Annotated[str, AfterValidator(_colour)]


def _frame_ancestor(value: str) -> str:
    """``*``, ``'self'`` or an origin: the sources ``Content-Security-Policy: frame-ancestors`` takes here."""
    return value if value in ("*", "'self'") else _origin(value)


class SiteSettings(_Section):
    """The public web site: catalogue pages, embeds, theming (docs/website.md)."""

    title_vi: str = Field("", max_length=200)  # "": [manifests] collection_label_vi
    title_en: str = Field("", max_length=200)  # "": [manifests] collection_label_en
    default_language: Literal["vi", "en"] = "vi"
    logo: str = ""  # a PNG, JPEG, SVG or WebP file shown in the header (path relative to config.toml); "": none
    primary_colour: Colour = "#7a2e1d"  # header, links, buttons
    accent_colour: Colour = "#c8963e"  # focus rings, highlights
    footer_vi: str = Field("", max_length=2000)  # plain text under every page; "": the provider's label
    footer_en: str = Field("", max_length=2000)
    page_size: int = Field(24, ge=1, le=200)  # search and browse results per page
    frame_ancestors: tuple[Annotated[str, AfterValidator(_frame_ancestor)], ...] = ("*",)  # who may frame embeds
    # tile formats the embeds ask for, best first, among those the browser decodes and info.json lists
    embed_formats: tuple[Literal["avif", "webp", "jpg", "png"], ...] = Field(("avif", "webp", "jpg"), min_length=1)


class ManifestsSettings(_Section):
    source: Path = Path("manifests/collection.csv")
    vocabulary: str = ""  # "": vocabulary.csv beside the export, if there is one
    state_dir: Path = Path("manifests/state")
    # A cluster: exactly one "writer" node records Change Discovery; "reader" nodes build the same
    # manifests but never record, and serve the writer's stream from a shared state_dir (docs/scaling.md).
    role: Literal["writer", "reader"] = "writer"
    publish: tuple[str, ...] = ("public", "restricted")  # access levels whose records get manifests
    collections: tuple[str, ...] = ("object_type", "site")
    paged_types: tuple[str, ...] = ("tư liệu",)
    extra_rights: tuple[str, ...] = ()
    collection_label_vi: str = "Bộ sưu tập di sản"
    collection_label_en: str = "Heritage collection"
    provider_id: str = "https://heritage.example.org/#museum"
    provider_label_vi: str = "Bảo tàng Di sản tỉnh (demo)"
    provider_label_en: str = "Provincial Heritage Museum (demo)"
    provider_homepage: str = "https://heritage.example.org/"
    item_homepage: str = ""
    thumbnail_size: int = Field(400, ge=16, le=4096)
    check_interval: float = Field(5.0, ge=0)
    max_delete_share: float = Field(0.5, ge=0, le=1)
    page_size: int = Field(100, ge=1, le=10_000)
    cache_control: str = "public, max-age=60"
    columns: ColumnMap = ColumnMap()

    @field_validator("collections")
    @classmethod
    def _known_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in GROUPABLE]
        if unknown:
            raise ValueError(f"cannot group by {unknown}; choose from {list(GROUPABLE)}")
        return value

    @property
    def vocabulary_file(self) -> Path:
        """The translations of the export's terms: as configured, else ``vocabulary.csv`` beside the export."""
        return Path(self.vocabulary) if self.vocabulary else self.source.parent / VOCABULARY_FILE


class IngestSettings(_Section):
    quality: int = Field(90, ge=1, le=100)
    compression: str = "jpeg"
    alpha_compression: str = "deflate"
    tile_size: int = Field(256, ge=64, le=4096)
    workers: int = Field(0, ge=0)
    queue_url: RedisUrl = ""
    queue_name: str = "iiif-ingest"
    job_timeout: int = Field(3600, ge=10)

    @field_validator("compression", "alpha_compression")
    @classmethod
    def _known_compression(cls, value: str) -> str:
        if value not in ("jpeg", "deflate", "lzw", "webp", "zstd", "none"):
            raise ValueError("choose jpeg, deflate, lzw, webp, zstd or none")
        return value


class DemoSettings(_Section):
    root: Path = Path("demo-images")
    state_dir: str = ""  # empty: <root>/.state

    def state_path(self) -> Path:
        """The demo's change history: its own, never a museum's [manifests] state_dir."""
        return Path(self.state_dir) if self.state_dir else self.root / ".state"


class MetricsSettings(_Section):
    enabled: bool = True
    allow: tuple[str, ...] = ("127.0.0.1", "::1")  # addresses/CIDRs that may scrape /metrics
    directory: str = ""  # prometheus_client multiprocess folder; "": a private temporary one

    @field_validator("allow")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _networks(value)


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    images: ImagesSettings = ImagesSettings()
    s3: S3Settings = S3Settings()
    http_source: HttpSourceSettings = HttpSourceSettings()
    output: OutputSettings = OutputSettings()
    http: HttpSettings = HttpSettings()
    lanes: LanesSettings = LanesSettings()
    vips: VipsSettings = VipsSettings()
    cache: CacheSettings = CacheSettings()
    admin: AdminSettings = AdminSettings()
    access: AccessSettings = AccessSettings()
    manifests: ManifestsSettings = ManifestsSettings()
    ingest: IngestSettings = IngestSettings()
    demo: DemoSettings = DemoSettings()
    metrics: MetricsSettings = MetricsSettings()
    site: SiteSettings = SiteSettings()

    @model_validator(mode="after")
    def _lanes_leave_threads(self) -> Settings:
        """Heavy renders, running or waiting, must leave a worker thread free for tiles and info.json."""
        lanes = self.lanes
        if lanes.heavy_pixels and lanes.heavy_concurrency + lanes.heavy_queue >= self.server.threads:
            raise ValueError(
                f"lanes.heavy_concurrency + lanes.heavy_queue ({lanes.heavy_concurrency} + {lanes.heavy_queue}) "
                f"must be below server.threads ({self.server.threads}), or lanes.heavy_pixels = 0 (no lane)"
            )
        return self

    @model_validator(mode="after")
    def _s3_has_a_bucket(self) -> Settings:
        if self.images.source == "s3" and not self.s3.bucket:
            raise ValueError('images.source = "s3" needs s3.bucket')
        return self

    @model_validator(mode="after")
    def _http_source_allowed(self) -> Settings:
        """The partner's server is named, and its host allowed: refused at start, not per request."""
        source = self.http_source
        if self.images.source != "http":
            return self
        if not source.base_url.startswith(("http://", "https://")) or not source.base_url.endswith("/"):
            raise ValueError('images.source = "http" needs http_source.base_url, an http(s) URL ending with "/"')
        if not host_allowed(source.base_url, source.allowed_hosts):
            raise ValueError(
                f"http_source.base_url's host is not in http_source.allowed_hosts {list(source.allowed_hosts)}"
            )
        return self

    @model_validator(mode="after")
    def _hidden_levels_never_published(self) -> Settings:
        """A manifest would reveal what a hidden level conceals (404 "no such image"). A name that is no
        level is harmless: its images are hidden, and the catalogue withholds records showing one."""
        levels = self.access.levels
        wrong = [name for name in self.manifests.publish if levels.get(name) == "hidden"]
        if wrong:
            raise ValueError(
                f"manifests.publish names {wrong}, hidden in [access] levels: a hidden level is never published"
            )
        return self

    def replace(self, **sections: Mapping[str, Any]) -> Settings:
        """A copy with some keys of some sections changed, validated again."""
        data = self.model_dump()
        for name, values in sections.items():
            data[name] = {**data[name], **values}
        return _validate(data, origin="override")


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``path`` (or $IIIF_SERVER_CONFIG, or ./config.toml if present) and the environment.

    Relative paths in the file are taken relative to the file's folder, so a
    config works from any working directory.
    """
    environ = os.environ if environ is None else environ
    chosen = path or environ.get(CONFIG_ENV) or ("config.toml" if Path("config.toml").is_file() else None)
    data: dict[str, Any] = {}
    base = Path.cwd()
    if chosen:
        file = Path(chosen)
        try:
            with file.open("rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {file}") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{file}: invalid TOML: {err}") from None
        if file.resolve() != Path(os.devnull):  # /dev/null means "no file": paths stay cwd-relative
            base = file.resolve().parent
        _check_sections(data, origin=str(file))
    for section, key, value in _env_overrides(environ):
        data.setdefault(section, {})[key] = _env_value(Settings.model_fields[section].annotation, key, value)
    settings = _validate(data, origin=str(chosen or "defaults"))
    return _resolve_paths(settings, base)


def _validate(data: dict[str, Any], origin: str) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        if not key:  # a rule across sections: its message names the keys
            raise ConfigError(f"invalid settings ({origin}): {first['msg'].removeprefix('Value error, ')}") from None
        raise ConfigError(f"invalid setting {key} ({origin}): {first['msg']}") from None


def _check_sections(data: dict[str, Any], origin: str) -> None:
    for section, values in data.items():
        if section not in Settings.model_fields:
            raise ConfigError(f"unknown section [{section}] in {origin}")
        if not isinstance(values, dict):
            raise ConfigError(f"[{section}] in {origin} must be a table")


def host_allowed(url: str, hosts: tuple[str, ...]) -> bool:
    """Is ``url`` http(s) on one of ``hosts`` (names, or ``name:port``)? ([http_source] allowed_hosts)"""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = parts.hostname.lower()
    with_port = f"{host}:{parts.port}" if parts.port else host
    return any(h.lower() in (host, with_port) for h in hosts)


def _env_overrides(environ: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """Split IIIF_SERVER_<SECTION>_<KEY>; keys may contain underscores, one section too (http_source)."""
    found = []
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        for section in sorted(Settings.model_fields, key=len, reverse=True):  # http_source before http
            key = rest[len(section) + 1 :] if rest.startswith(section + "_") else ""
            if key and key in Settings.model_fields[section].annotation.model_fields:  # type: ignore[union-attr]
                found.append((section, key, value))
                break
        else:
            raise ConfigError(f"unknown setting in environment variable {name}")
    return found


def _env_value(model: Any, key: str, raw: str) -> Any:
    """Lists come from the environment as comma-separated strings."""
    annotation = str(model.model_fields[key].annotation)
    if annotation.startswith("tuple"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    def absolute(path: Path) -> Path:
        return path if path.is_absolute() else base / path

    return settings.replace(
        images={"root": absolute(settings.images.root)},
        demo={
            "root": absolute(settings.demo.root),
            "state_dir": str(absolute(Path(settings.demo.state_dir))) if settings.demo.state_dir else "",
        },
        cache={"disk_dir": absolute(settings.cache.disk_dir)},
        manifests={
            "source": absolute(settings.manifests.source),
            "state_dir": absolute(settings.manifests.state_dir),
            "vocabulary": str(absolute(Path(settings.manifests.vocabulary))) if settings.manifests.vocabulary else "",
        },
        metrics={"directory": str(absolute(Path(settings.metrics.directory))) if settings.metrics.directory else ""},
        access={"state_dir": str(absolute(Path(settings.access.state_dir))) if settings.access.state_dir else ""},
        site={"logo": str(absolute(Path(settings.site.logo))) if settings.site.logo else ""},
    )
