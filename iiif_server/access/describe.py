"""Service descriptions of the authorization flows, for an image service (info.json, manifests).

Pure: base URL, identifier and settings in, JSON-ready dicts out. (Filled in by the auth-image work.)
"""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..image.model import ApiVersion


def auth_services(settings: Settings, base_url: str, identifier: str, version: ApiVersion) -> list[dict[str, Any]]:
    """The Auth 2.0 probe service (with its access, token and logout services) and the Auth 1.0
    login service (with token and logout) of a restricted image's service; [] for none."""
    return []
