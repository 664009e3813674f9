"""Errors of the IIIF core: values the HTTP layer maps to status codes in one place.

The core (parsing, planning, sources, rendering) raises only these; it never
builds an HTTP response. ``image.routes`` owns the class -> status mapping.

    IIIFError
     ├── InvalidRequest        malformed URL or parameter value        (400)
     │    ├── SizeNotAllowed   beyond max* limits, or upscaling w/o ^  (400)
     │    └── OverBudget       valid, but over a per-request budget   (400)
     ├── NotFound              identifier names no image under root    (404)
     ├── AccessDenied          the access policy refuses this client   (403)
     │    └── AuthorizationRequired  beyond what an anonymous client may see (401)
     ├── ImageDecodeError      source exists but cannot be decoded     (422)
     └── Overloaded            busy, not wrong: come back later        (503 + Retry-After)
          ├── RenderTimeout    the render passed its deadline
          ├── StoreUnavailable the object store of the masters failed or timed out
          └── LaneFull         the heavy-render lane has no room
     └── ClientGone            the client left before its answer was made (499, never seen by it)

    ConfigError                invalid settings; stops start-up, never reaches a client
    WouldBlock                 control flow, never reaches a client (see below)
"""

from __future__ import annotations


class IIIFError(Exception):
    """Base of every error a client may see; ``str(err)`` is a one-line reason."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter

    def __str__(self) -> str:
        return self.message


class InvalidRequest(IIIFError):
    """The request's syntax or a parameter value is invalid (Image API 3.0 §4, §7.3)."""


class SizeNotAllowed(InvalidRequest):
    """A size over the server's limits, or upscaling without ``^`` (Image API 3.0 §4.2)."""


class OverBudget(InvalidRequest):
    """A valid request whose render would cost more than ``[images] max_request_mb`` or
    ``max_decode_pixels`` (image/budget.py): 400, as for ``maxArea``; the file is healthy."""


class NotFound(IIIFError):
    """No image with that identifier exists under the image root."""


class AccessDenied(IIIFError):
    """The access policy refuses this image to this client."""


class AuthorizationRequired(AccessDenied):
    """A restricted image asked sharper than its degraded view: only an authorised client may have it."""


class ImageDecodeError(IIIFError):
    """The source file exists but is truncated, corrupt or not an image."""


class Overloaded(IIIFError):
    """The server is busy, not the request wrong (Image API 3.0 §7.3: 503 Service Unavailable).
    ``retry_after`` (whole seconds) becomes the ``Retry-After`` header."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RenderTimeout(Overloaded):
    """libvips was stopped at ``[server] render_timeout``."""


class StoreUnavailable(Overloaded):
    """The object store holding the masters (``[images] source = "s3"`` or ``"http"``) did not answer in time or
    failed: the request is fine and may be tried again, so 503, never 500 or 404."""


class LaneFull(Overloaded):
    """A heavy render found the lane's queue full, or waited its ``[lanes] heavy_wait`` in it."""


class ClientGone(IIIFError):
    """Every client that wanted this render has disconnected: libvips was stopped, nobody to answer.
    Logged as 499 (nginx's "client closed request"); the socket is gone, so nothing is sent."""


class ConfigError(Exception):
    """A setting is missing, unknown or of the wrong type; names the key."""


class WouldBlock(Exception):
    """Answering needs work that may block (Redis, the disk cache, libvips, a first file lookup).

    Raised only in a request marked inline (``INLINE`` in the environ, set by the ASGI edge on
    the event loop): the edge catches it and runs the request again on a thread.
    """


#: WSGI environ key: answer from memory and page-cached files only, else raise ``WouldBlock``.
INLINE = "iiif.inline"
#: WSGI environ key set by the ASGI edge: a ``threading.Event`` set when the client disconnects.
CANCEL = "iiif.cancel"
#: WSGI environ key set by the image endpoint: the source file of a 200 it answered from memory,
#: which the ASGI edge may replay (replay.py).
REPLAYABLE = "iiif.replayable"
#: WSGI environ key set by ``Observed``: the tier that answered, for the replay's log lines.
TIER = "iiif.tier"
