"""Service descriptions of the authorization flows, for a restricted image's service.

Pure: settings, base URL and identifier in, JSON-ready dicts out; info.json (image/info.py) and the
manifests' image services (presentation/) embed the same blocks, so a viewer finds the same flow
wherever it starts. Two specs side by side:

- Authorization Flow 2.0: one probe service (``AuthProbeService2``) holding the access services the
  settings enable, in the order clients try them (2.0 §3.3: ``external``, ``kiosk``, ``active``),
  each with its token service and, for ``active``, a logout service.
- Authentication 1.0 (what Mirador 4 speaks): the login service with its token and logout services.

Texts are bilingual ({"vi": [...], "en": [...]}); labels name the institution (2.0 §3.3.1 "MUST
clearly indicate the domain or institution"), from ``[manifests] provider_label_vi/en``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..config import Settings
from .endpoints import (
    AUTH1_CONTEXT,
    AUTH1_LOGIN,
    AUTH1_LOGOUT,
    AUTH1_TOKEN,
    AUTH2_ACCESS_ACTIVE,
    AUTH2_ACCESS_KIOSK,
    AUTH2_CONTEXT,
    AUTH2_LOGOUT,
    AUTH2_PROBE,
    AUTH2_TOKEN,
)

AUTH1_PROFILE = "http://iiif.io/api/auth/1/"
#: Image 3.0 §5.8 "Each object SHOULD have a profile": the probe's definition. Mirador 4.0 also calls
#: ``getProfile().match`` on every service of an info.json it was redirected to: one without a
#: profile throws there and the image never shows. (https: not the ``http://iiif.io/api/auth/``
#: prefix by which Mirador recognises the 1.0 services it can drive.)
PROBE_PROFILE = "https://iiif.io/api/auth/2.0/#probe-service"


def _text(vi: str, en: str) -> dict[str, list[str]]:
    return {"vi": [vi], "en": [en]}


def probe_id(base_url: str, identifier: str) -> str:
    """The probe service of one image: its identifier quoted as in its Image API URLs."""
    return f"{base_url}{AUTH2_PROBE}{quote(identifier, safe='')}"


def auth2_probe(settings: Settings, base_url: str, identifier: str) -> dict[str, Any]:
    """The ``AuthProbeService2`` of one image, with its access, token and logout services."""
    access, provider = settings.access, settings.manifests
    token = {
        "id": base_url + AUTH2_TOKEN,
        "type": "AuthAccessTokenService2",
        "errorHeading": _text("Không mở được ảnh độ phân giải đầy đủ", "The full-resolution image could not be opened"),
        "errorNote": _text(access.access_note_vi, access.access_note_en),
    }
    services: list[dict[str, Any]] = []
    if access.external_networks or access.external_header:
        services.append(
            {
                "type": "AuthAccessService2",
                "profile": "external",
                "label": _text(
                    f"Mạng nội bộ của {provider.provider_label_vi}", f"{provider.provider_label_en} staff network"
                ),
                "service": [token],
            }
        )
    if access.kiosk_networks:
        services.append(
            {
                "id": base_url + AUTH2_ACCESS_KIOSK,
                "type": "AuthAccessService2",
                "profile": "kiosk",
                "label": _text(
                    f"Máy xem tại {provider.provider_label_vi}", f"Gallery terminal at {provider.provider_label_en}"
                ),
                "service": [token],
            }
        )
    services.append(
        {
            "id": base_url + AUTH2_ACCESS_ACTIVE,
            "type": "AuthAccessService2",
            "profile": "active",
            "label": _text(f"Đăng nhập vào {provider.provider_label_vi}", f"Log in to {provider.provider_label_en}"),
            "heading": _text("Ảnh này có giới hạn truy cập", "This image is restricted"),
            "note": _text(access.access_note_vi, access.access_note_en),
            "confirmLabel": _text("Đăng nhập", "Log in"),
            "service": [
                token,
                {
                    "id": base_url + AUTH2_LOGOUT,
                    "type": "AuthLogoutService2",
                    "label": _text(
                        f"Đăng xuất khỏi {provider.provider_label_vi}", f"Log out of {provider.provider_label_en}"
                    ),
                },
            ],
        }
    )
    return {
        "id": probe_id(base_url, identifier),
        "type": "AuthProbeService2",
        "profile": PROBE_PROFILE,
        "errorHeading": _text("Ảnh này có giới hạn truy cập", "This image is restricted"),
        "errorNote": _text(access.access_note_vi, access.access_note_en),
        "service": services,
    }


def auth1_login(settings: Settings, base_url: str) -> dict[str, Any]:
    """The Authentication 1.0 login service (1.0 §2.1.3), with its token and logout services.

    1.0 names its text properties ``header``/``description`` and takes plain strings; the
    bilingual text is given in the default language, Vietnamese, then English."""
    access, provider = settings.access, settings.manifests
    return {
        "@context": AUTH1_CONTEXT,
        "@id": base_url + AUTH1_LOGIN,
        "@type": "AuthCookieService1",  # Presentation 3.0 §3.4 (service): the 1.0 types for 3.0 documents
        "profile": AUTH1_PROFILE + "login",
        "label": f"Đăng nhập vào {provider.provider_label_vi} · Log in to {provider.provider_label_en}",
        "header": "Ảnh này có giới hạn truy cập · This image is restricted",
        "description": f"{access.access_note_vi} {access.access_note_en}",
        "confirmLabel": "Đăng nhập · Log in",
        "failureHeader": "Không đăng nhập được · Login failed",
        "failureDescription": f"{access.access_note_vi} {access.access_note_en}",
        "service": [
            {"@id": base_url + AUTH1_TOKEN, "@type": "AuthTokenService1", "profile": AUTH1_PROFILE + "token"},
            {
                "@id": base_url + AUTH1_LOGOUT,
                "@type": "AuthLogoutService1",
                "profile": AUTH1_PROFILE + "logout",
                "label": f"Đăng xuất · Log out of {provider.provider_label_en}",
            },
        ],
    }


def auth_services(settings: Settings, base_url: str, identifier: str) -> list[dict[str, Any]]:
    """The services a restricted image's service carries: the 2.0 probe, then the 1.0 login."""
    return [auth2_probe(settings, base_url, identifier), auth1_login(settings, base_url)]


def embedded(services: list[dict[str, Any]], version3: bool) -> list[dict[str, Any]]:
    """``services`` as a document of one API generation embeds them.

    3.0 (Image 3.0 §5.8, Presentation 3.0 "service", Auth 2.0 §2.1): no ``@context`` inside a
    service; the document lists the auth 2 context before its own (``contexts``); the 1.0 terms
    are in the Image and Presentation 3 contexts. 2.x (Image 2.1 §5.3): each service carries its own
    ``@context``, the 2.0 probe included."""
    if version3:
        return [{key: value for key, value in service.items() if key != "@context"} for service in services]
    return [service if "@context" in service else {"@context": AUTH2_CONTEXT, **service} for service in services]
