"""Static assets under fingerprinted names, compressed once, cached by browsers for a year.

``Assets.url("openseadragon/openseadragon.min.js")`` names a file by its content:
``/assets/openseadragon/openseadragon.min.3f2a9c0d1e2b.js``. A changed file gets a new name, so
every answer can say ``Cache-Control: public, max-age=31536000, immutable`` and a repeat visit asks
for nothing. Text files (JS, CSS, SVG, JSON) are gzip-compressed once, in memory, and sent as such
to clients that accept gzip (all browsers); ``Vary: Accept-Encoding`` tells caches. gzip rather than
brotli: the standard library has it and every browser and CDN speaks it; brotli would save a further
~15 % on Mirador and needs a compiled dependency.

Files come from ``web/static/`` (the vendored viewers and the site's own CSS/JS) and from extra
files the settings name (``[site] logo``), never from anywhere else: a name not in the table is 404.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "/assets/"
IMMUTABLE = "public, max-age=31536000, immutable"
COMPRESSIBLE = (".js", ".css", ".svg", ".json", ".txt", ".html", ".map")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".json": "application/json"}


@dataclass(frozen=True, slots=True)
class Asset:
    name: str  # "openseadragon/openseadragon.min.js"
    path: Path
    digest: str  # first 12 hex digits of its sha256
    media_type: str
    body: bytes
    gzipped: bytes | None  # None: not worth compressing (images, fonts) or no smaller

    @property
    def fingerprinted(self) -> str:
        """``openseadragon/openseadragon.min.3f2a9c0d1e2b.js``: the digest before the last suffix."""
        pure = PurePosixPath(self.name)
        return str(pure.with_name(f"{pure.stem}.{self.digest}{pure.suffix}"))


class Assets:
    """The table of servable assets: ``web/static/`` plus ``extra`` (public name -> file)."""

    def __init__(self, root: Path = STATIC, extra: dict[str, Path] | None = None) -> None:
        self.root = root
        self.extra = dict(extra or {})
        self._lock = threading.Lock()
        self._by_name: dict[str, Asset] = {}
        self._by_fingerprint: dict[str, Asset] = {}

    def url(self, name: str) -> str:
        """The path to link: ``/assets/<fingerprinted name>`` (the caller adds the script root)."""
        return PREFIX + self.asset(name).fingerprinted

    def asset(self, name: str) -> Asset:
        """The asset of a plain name (KeyError if there is none); read, hashed and compressed once."""
        found = self._by_name.get(name)
        if found is not None:
            return found
        with self._lock:
            found = self._by_name.get(name)
            if found is None:
                found = self._load(name)
                self._by_name[name] = found
                self._by_fingerprint[found.fingerprinted] = found
            return found

    def by_fingerprint(self, fingerprinted: str) -> Asset | None:
        """The asset a fingerprinted name denotes, or None (unknown, or an old digest)."""
        found = self._by_fingerprint.get(fingerprinted)
        if found is not None:
            return found
        pure = PurePosixPath(fingerprinted)
        stem, dot, digest = pure.stem.rpartition(".")
        if not dot or len(digest) != 12:
            return None
        name = str(pure.with_name(stem + pure.suffix))
        try:
            asset = self.asset(name)
        except KeyError:
            return None
        return asset if asset.digest == digest else None

    def _load(self, name: str) -> Asset:
        path = self.extra.get(name) or self._static(name)
        if path is None:
            raise KeyError(name)
        try:
            body = path.read_bytes()
        except OSError:
            raise KeyError(name) from None
        suffix = PurePosixPath(name).suffix.lower()
        media_type = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        gzipped = None
        if suffix in COMPRESSIBLE:
            packed = gzip.compress(body, compresslevel=9, mtime=0)
            gzipped = packed if len(packed) < len(body) else None
        digest = hashlib.sha256(body).hexdigest()[:12]
        return Asset(name, path, digest, media_type, body, gzipped)

    def _static(self, name: str) -> Path | None:
        """A file under the static root named by a clean relative path; nothing else."""
        pure = PurePosixPath(name)
        if pure.is_absolute() or not pure.parts or any(p in ("", ".", "..") or p.startswith(".") for p in pure.parts):
            return None
        path = self.root.joinpath(*pure.parts)
        try:
            resolved = path.resolve(strict=True)
        except OSError:
            return None
        return resolved if resolved.is_file() and resolved.is_relative_to(self.root.resolve()) else None


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether ``Accept-Encoding`` admits gzip (``q=0`` refuses it)."""
    for part in (accept_encoding or "").lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            q = params.strip().removeprefix("q=")
            try:
                return not params.strip().startswith("q=") or float(q) > 0
            except ValueError:
                return False
    return False
