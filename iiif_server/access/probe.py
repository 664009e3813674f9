"""The probe service's answer (Authorization Flow 2.0 §5.2), as a JSON-ready dict. Pure.

``status`` is what the image endpoint would answer the same client for the full-resolution image
(the route asks the image service's own decision); the HTTP status of the probe itself is always 200.
A refused client is offered the preview tier (``DEGRADED_TIER``) as its ``substitute``: an Image
API 3.0 service, open to everyone, with the ``heading``/``note`` that say how to ask for access.
"""

from __future__ import annotations

from typing import Any

from ..config import Settings
from .endpoints import AUTH2_CONTEXT


def probe_result(settings: Settings, status: int, substitute_id: str = "") -> dict[str, Any]:
    """``AuthProbeResult2``; ``substitute_id``: the preview tier's service URL, offered when refused."""
    result: dict[str, Any] = {"@context": AUTH2_CONTEXT, "type": "AuthProbeResult2", "status": status}
    if status == 200:
        return result  # §5.2 substitute "MUST NOT be present otherwise"; heading/note are for errors
    access = settings.access
    if substitute_id:
        result["substitute"] = [
            {
                "id": substitute_id,
                "type": "ImageService3",
                "profile": "level2",
                "label": {"vi": ["Bản xem trước có hình mờ"], "en": ["Watermarked preview"]},
            }
        ]
    result["heading"] = {"vi": ["Ảnh này có giới hạn truy cập"], "en": ["This image is restricted"]}
    result["note"] = {"vi": [access.access_note_vi], "en": [access.access_note_en]}
    return result
