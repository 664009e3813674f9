"""The ``/iiif/3/...`` and ``/iiif/2/...`` endpoints as a plain WSGI app: the hot path.

Every tile goes through here, so it skips Flask's request/response machinery
(about a third of a cached tile's time when measured) and builds the response
from the environ directly; the rest of the site stays in Flask. The logic
lives in ``ImageService``; this module only speaks HTTP (Image API 3.0 §6-7):
303 from the base URI, JSON-LD negotiation, canonical and profile Link headers,
ETag/Last-Modified with 304 answered before any pixel is rendered, CORS on
every response; the error -> status table, status lines and validators are the
HTTP edge's (``http.py``), shared with Flask's pages.

Under the ASGI edge (``asgi.py``) a request may arrive marked ``INLINE``: it runs on the
event loop and may only be answered from memory (``ImageService`` ``fast``); otherwise
``WouldBlock`` goes up to the edge, which runs it again on a thread.

Credentials (``access/credentials.py``) are handed to the service as a callable it asks only for a
non-public image. An answer for a client whose own levels allowed it (``Authorised``) is private
(``Cache-Control: private``, ``Vary: Cookie, Authorization``) and never replayed; one beyond the
anonymous view is recorded in the audit log, on a thread (the record may wait for room in its queue).

A restricted image has a lower tier, ``<identifier>~preview`` (Auth 1.0 §3.2): a client that may have
only the degraded view is redirected (302) from the image's info.json to the tier's, whose every answer
is that view. The image's probe service (Auth 2.0 §5, ``AUTH2_PROBE``) is answered here too, as it is
the image endpoint's own decision for the credentials sent: never on the event loop, never replayed.

CORS: ``*`` on every answer, except those that depend on who asks (a non-public image's answers and
401s, the probe, preflights), which name the requesting page's origin with credentials allowed when it
is this site's or one of ``[access] token_origins`` (``http.credentialed_cors``), so a viewer on the
museum's own web site can send the session cookie. A public answer never looks at ``Origin``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..access import Allowed, Authorised, Decision
from ..access.endpoints import AUTH2_CONTEXT, AUTH2_PROBE, DEGRADED_TIER
from ..access.probe import probe_result
from ..errors import INLINE, REPLAYABLE, AuthorizationRequired, IIIFError, RenderTimeout, WouldBlock
from ..http import (
    EVERY_RESPONSE,
    NO_STORE,
    PRIVATE_CACHE_CONTROL,
    VARY_CREDENTIALS,
    VARY_ORIGIN,
    Headers,
    base_url,
    cancelled_of,
    credentialed_cors,
    error_body,
    error_headers,
    is_fresh,
    json_media_type,
    preflight_headers,
    status_for,
    status_line,
    validators,
)
from ..metrics import NOT_MODIFIED, note_tier
from ..observe import request_target
from .model import ApiVersion, ImageRequest
from .parse import BaseUriRequest, InfoRequest, parse_path
from .service import ImageService, Prepared, Who, service_path
from .sources import Located

if TYPE_CHECKING:  # built by services.py; the endpoint only calls them
    from ..access.audit import Audit
    from ..access.credentials import Credentials
    from ..config import Settings

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_PREFIXES = {"/iiif/3/": ApiVersion.V3, "/iiif/2/": ApiVersion.V2}

#: An answer: status, headers, body, and whether it depends on who asks (its CORS names a trusted origin).
Reply = tuple[int, Headers, bytes, bool]


class ImageEndpoint:
    """WSGI middleware: answers ``/iiif/{2,3}/...``, hands everything else to ``fallback``."""

    def __init__(
        self,
        service: ImageService,
        fallback: WSGIApp,
        public_base_url: str = "",
        cache_control: str = "public, max-age=86400",
        cors_max_age: int = 86400,
        credentials: Credentials | None = None,
        audit: Audit | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.service = service
        self.settings = settings  # for the probe's texts; None: no probe service
        self.credentials = credentials  # None: every client is anonymous
        self.audit = audit
        self.fallback = fallback
        self.public_base_url = public_base_url
        self.cache_control = cache_control
        self.cors_max_age = cors_max_age
        # origins besides this site's own whose pages may read answers with a viewer's credentials
        self.token_origins = frozenset(o.lower() for o in settings.access.token_origins) if settings else frozenset()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        version = _PREFIXES.get(path[:8])
        if version is None:
            if environ.get(INLINE):
                raise WouldBlock  # Flask's pages and the probe: on a thread
            if not path.startswith(AUTH2_PROBE) or self.settings is None:
                return self.fallback(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        private = False  # does the answer depend on who asks? (then its CORS may name the origin)
        try:
            if method == "OPTIONS":  # a preflight does not know the image: a trusted origin is echoed
                status, headers, body, private = (
                    204,
                    [
                        *preflight_headers(environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS"), self.cors_max_age),
                        VARY_ORIGIN,
                    ],
                    b"",
                    True,
                )
            elif method not in ("GET", "HEAD"):
                status, headers, body = self._error(405, "method not allowed")
                headers.append(("Allow", "GET, HEAD, OPTIONS"))
            elif version is None:
                status, headers, body, private = self._probe(environ, _decoded(path[len(AUTH2_PROBE) :]))
            else:
                status, headers, body, private = self._handle(environ, version, _decoded(path[8:]))
        except WouldBlock:
            raise
        except IIIFError as error:
            status, headers, body = self._error(status_for(error), str(error))
            headers += error_headers(error)
            if isinstance(error, AuthorizationRequired):  # only ever about an image that is not public
                private = True
                headers.append(VARY_ORIGIN)
            if isinstance(error, RenderTimeout):
                log.warning("503 for %s%s: %s", environ.get("SCRIPT_NAME", ""), path, error)
        except Exception:
            log.exception("unhandled error for %s", path)
            status, headers, body = self._error(500, "internal server error")
        cors = credentialed_cors(environ, self.public_base_url, self.token_origins) if private else EVERY_RESPONSE
        start_response(status_line(status), headers + cors)
        return [b"" if method == "HEAD" else body]

    @staticmethod
    def _error(status: int, message: str) -> tuple[int, Headers, bytes]:
        body, headers = error_body(message)
        return status, headers, body

    def _base_url(self, environ: dict[str, Any]) -> str:
        return base_url(environ, self.public_base_url)

    def _who(self, environ: dict[str, Any]) -> Who | None:
        """The request's credentials, for the service to ask only if the image is not public."""
        credentials = self.credentials
        if credentials is None:
            return None
        return lambda fast: credentials.grant(environ, fast)

    def _handle(self, environ: dict[str, Any], version: ApiVersion, rest: str) -> Reply:
        parsed = parse_path(version, rest)
        fast = bool(environ.get(INLINE))
        if isinstance(parsed, BaseUriRequest):
            self.service.locate(parsed.identifier, fast, self._who(environ))
            location = self._base_url(environ) + service_path(version, parsed.identifier) + "/info.json"
            return 303, [("Location", location), ("Content-Length", "0")], b"", False
        if isinstance(parsed, InfoRequest):
            return self._info(environ, version, parsed.identifier, fast)
        return self._image(environ, parsed, fast)

    def _info(self, environ: dict[str, Any], version: ApiVersion, identifier: str, fast: bool) -> Reply:
        source, body, decision = self.service.info(
            version, identifier, self._base_url(environ), fast, self._who(environ)
        )
        if body is None:  # the lower tier only (Auth 1.0 §3.2): its own document, by a 302
            tier = service_path(version, identifier + DEGRADED_TIER)
            location = f"{self._base_url(environ)}{tier}/info.json"
            return (
                302,
                [
                    ("Location", location),
                    ("Content-Length", "0"),
                    ("Cache-Control", "private"),  # another client, or this one logged in, gets another answer
                    ("Vary", VARY_CREDENTIALS),
                ],
                b"",
                True,
            )
        etag = hashlib.sha1(body).hexdigest()[:32]
        media_type = json_media_type(environ.get("HTTP_ACCEPT"), version.context, version is ApiVersion.V3)
        private = not isinstance(decision, Allowed)
        vary = f"Accept, {VARY_CREDENTIALS}" if private else "Accept"
        headers = [("Link", f'<{version.profile_uri}>;rel="profile"'), ("Vary", vary)]
        return self._respond(environ, lambda: body, media_type, headers, etag, source, fast, private)

    def _probe(self, environ: dict[str, Any], identifier: str) -> Reply:
        """Auth 2.0 §5.2: HTTP 200 whatever the image would answer, which ``status`` tells."""
        assert self.settings is not None
        status = self.service.probe(identifier, self._who(environ))
        base = self._base_url(environ)
        substitute = f"{base}{service_path(ApiVersion.V3, identifier + DEGRADED_TIER)}" if status == 401 else ""
        document = probe_result(self.settings, status, substitute)
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        media_type = json_media_type(environ.get("HTTP_ACCEPT"), AUTH2_CONTEXT, True)
        return (
            200,
            [
                ("Content-Type", media_type),
                ("Content-Length", str(len(body))),
                NO_STORE,  # the answer of one client's credentials, at one moment
                ("Vary", f"Accept, {VARY_CREDENTIALS}"),
            ],
            body,
            True,
        )

    def _image(self, environ: dict[str, Any], request: ImageRequest, fast: bool) -> Reply:
        prepared, decision = self.service.prepare_for(request, fast, self._who(environ))
        canonical = f"{self._base_url(environ)}{service_path(request.version, request.identifier)}/{prepared.canonical}"
        links = [("Link", f'<{canonical}>;rel="canonical", <{request.version.profile_uri}>;rel="profile"')]
        private = not isinstance(decision, Allowed)
        if private:
            links.append(("Vary", VARY_CREDENTIALS))
        head = environ.get("REQUEST_METHOD") == "HEAD"
        cancelled = cancelled_of(environ)  # the render stops if the client leaves (and nobody else waits for it)

        user = self._audited(request, prepared, decision, fast) if private and not head else None

        def body_of() -> bytes | None:
            if head:
                return self.service.stored(prepared, fast)  # a HEAD never renders
            body = self.service.render(prepared, fast, cancelled)
            if user is not None and self.audit is not None:
                self.audit.record(user, request.identifier, environ.get("REMOTE_ADDR") or "", request_target(environ))
            return body

        return self._respond(
            environ, body_of, request.format.media_type, links, prepared.etag, prepared.source, fast, private
        )

    def _audited(self, request: ImageRequest, prepared: Prepared, decision: Decision, fast: bool) -> str | None:
        """The user to record in the audit log for this answer, if it shows more than the anonymous view."""
        if self.audit is None or not isinstance(decision, Authorised):
            return None
        if not self.service.beyond_anonymous(request, prepared, decision):
            return None
        if fast:
            raise WouldBlock  # recording may wait for room in the audit's queue: never on the event loop
        return decision.user

    def _respond(
        self,
        environ: dict[str, Any],
        body_of: Callable[[], bytes | None],
        media_type: str,
        headers: Headers,
        etag: str,
        source: Located,
        fast: bool,
        private: bool = False,
    ) -> Reply:
        """304 if the client's copy is current, decided before ``body_of`` renders anything.

        A 200 answered on the event loop came from memory: the edge may replay it (replay.py).
        ``body_of`` gives None for a HEAD whose image is neither stored nor cached: its answer
        has no Content-Length (RFC 9110 §8.6) rather than a render. A ``private`` answer (one that
        depends on who asks: a degraded view) is never kept by a shared cache nor replayed.
        """
        revalidate = validators(etag, source.mtime, PRIVATE_CACHE_CONTROL if private else self.cache_control)
        if is_fresh(environ, etag, source.mtime):
            note_tier(NOT_MODIFIED)
            return 304, headers + revalidate, b"", private
        body = body_of()
        if fast and body is not None and not private:
            environ[REPLAYABLE] = source
        length = [] if body is None else [("Content-Length", str(len(body)))]
        return 200, [("Content-Type", media_type), *length, *headers, *revalidate], body or b"", private


def _decoded(rest: str) -> str:
    """WSGI gives the percent-decoded path as latin-1 code points of its UTF-8 bytes."""
    return rest.encode("latin-1").decode("utf-8", "replace")
