"""info.json documents for 3.0 and 2.1, built purely from a layout."""

from __future__ import annotations

from iiif_server.image.info import FEATURES_V3, build_info
from iiif_server.image.model import ApiVersion, Limits
from iiif_server.image.plan import Layout, Level

LAYOUT = Layout(10240, 8192, (Level(1, 10240, 8192), Level(2, 5120, 4096)), 256, 256)


def test_v3_document() -> None:
    info = build_info(
        ApiVersion.V3, "https://x.org/iiif/3/a%2Fb.tif", LAYOUT, Limits(max_area=50_000_000), 512, ("jpg",)
    )
    assert info["@context"] == "http://iiif.io/api/image/3/context.json"
    assert info["id"] == "https://x.org/iiif/3/a%2Fb.tif"
    assert info["type"] == "ImageService3"
    assert info["protocol"] == "http://iiif.io/api/image"
    assert info["profile"] == "level2"
    assert (info["width"], info["height"]) == (10240, 8192)
    assert info["tiles"] == [{"width": 256, "height": 256, "scaleFactors": [1, 2, 4, 8, 16, 32, 64]}]
    assert info["maxArea"] == 50_000_000 and "maxWidth" not in info
    sizes = [(s["width"], s["height"]) for s in info["sizes"]]
    assert sizes[0] == (160, 128) and sizes == sorted(sizes)
    assert all(w * h <= 50_000_000 for w, h in sizes)  # the full 84 MP size is over the limit: not listed
    assert (10240, 8192) not in sizes
    assert info["extraFormats"] == ["webp", "tif", "gif", "avif"]
    assert info["extraQualities"] == ["color", "gray", "bitonal"]
    for feature in (
        "mirroring",
        "rotationArbitrary",
        "regionByPct",
        "sizeByPct",
        "sizeUpscaling",
        "sizeByConfinedWh",
        "sizeByWh",
        "baseUriRedirect",
        "canonicalLinkHeader",
        "cors",
        "jsonldMediaType",
        "profileLinkHeader",
        "regionSquare",
    ):
        assert feature in info["extraFeatures"]
    assert info["extraFeatures"] == FEATURES_V3
    assert info["preferredFormats"] == ["jpg"]


def test_untiled_source_gets_the_default_tile_size() -> None:
    layout = Layout(3000, 2000, (Level(1, 3000, 2000),))
    info = build_info(ApiVersion.V3, "u", layout, Limits(), 512)
    assert info["tiles"] == [{"width": 512, "height": 512, "scaleFactors": [1, 2, 4, 8]}]
    assert "preferredFormats" not in info


def test_v2_document() -> None:
    info = build_info(ApiVersion.V2, "https://x.org/iiif/2/a", LAYOUT, Limits(max_width=4000), 512)
    assert info["@context"] == "http://iiif.io/api/image/2/context.json"
    assert info["@id"] == "https://x.org/iiif/2/a"
    assert "id" not in info and "type" not in info
    level, extra = info["profile"]
    assert level == "http://iiif.io/api/image/2/level2.json"
    assert extra["formats"] == ["jpg", "png", "webp", "tif", "gif", "avif"]
    assert extra["qualities"] == ["default", "color", "gray", "bitonal"]
    assert {"sizeAboveFull", "mirroring", "rotationArbitrary", "regionSquare"} <= set(extra["supports"])
    assert extra["maxWidth"] == 4000
    assert all(s["width"] <= 4000 for s in info["sizes"])


def test_services_of_a_restricted_image_are_embedded_as_each_version_says() -> None:
    from iiif_server.access.describe import auth_services
    from iiif_server.config import Settings

    services = auth_services(Settings(), "https://museum.example", "a/b.tif")
    limits = Limits(0, 0, 0)
    plain = build_info(ApiVersion.V3, "https://museum.example/iiif/3/x", LAYOUT, limits, 512)
    assert build_info(ApiVersion.V3, "https://museum.example/iiif/3/x", LAYOUT, limits, 512, services=None) == plain
    v3 = build_info(ApiVersion.V3, "https://museum.example/iiif/3/x", LAYOUT, limits, 512, services=services)
    assert v3["@context"] == ["http://iiif.io/api/auth/2/context.json", "http://iiif.io/api/image/3/context.json"]
    probe, login = v3["service"]
    assert "@context" not in probe and "@context" not in login  # Presentation 3.0: hoisted to the document
    assert probe["id"] == "https://museum.example/auth/2/probe/a%2Fb.tif" and probe["profile"]  # Mirador: a profile
    assert (login["@type"], [s["@type"] for s in login["service"]]) == (
        "AuthCookieService1",
        ["AuthTokenService1", "AuthLogoutService1"],
    )
    assert {k: v for k, v in v3.items() if k not in ("service", "@context")} == {
        k: v for k, v in plain.items() if k != "@context"
    }
    v2 = build_info(ApiVersion.V2, "https://museum.example/iiif/2/x", LAYOUT, limits, 512, services=services)
    assert v2["@context"] == "http://iiif.io/api/image/2/context.json"
    assert [s["@context"] for s in v2["service"]] == [
        "http://iiif.io/api/auth/2/context.json",
        "http://iiif.io/api/auth/1/context.json",
    ]
    assert services[0].get("@context") is None  # the shared descriptions are not changed in place
