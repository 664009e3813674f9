"""Settings: defaults, TOML, environment overrides, and errors that name the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iiif_server.config import Settings, load_settings
from iiif_server.errors import ConfigError

NO_FILE = {"IIIF_SERVER_CONFIG": os.devnull}


def test_defaults_without_a_file() -> None:
    settings = load_settings(environ=NO_FILE)
    assert settings.cache.disk_dir == Path.cwd() / "cache"  # not /dev/cache
    assert settings.server.port == 8182
    assert settings.images.max_area == 100_000_000
    assert settings.output.preferred_formats == ("jpg",)


def test_repository_config_matches_the_defaults_in_code() -> None:
    """config.toml documents the defaults: it must not drift from them."""
    repo = Path(__file__).resolve().parent.parent
    from_file = load_settings(repo / "config.toml", environ={})
    defaults = load_settings(
        environ={
            **NO_FILE,
            "IIIF_SERVER_IMAGES_ROOT": str(repo / "demo-images"),
            "IIIF_SERVER_DEMO_ROOT": str(repo / "demo-images"),
            "IIIF_SERVER_MANIFESTS_SOURCE": str(repo / "manifests" / "collection.csv"),
            "IIIF_SERVER_MANIFESTS_STATE_DIR": str(repo / "manifests" / "state"),
            "IIIF_SERVER_CACHE_DISK_DIR": str(repo / "cache"),  # the tests' working folder is not the repository
        }
    )
    assert from_file == defaults


def test_toml_values_and_relative_paths(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "site.toml"
    config.parent.mkdir()
    config.write_text('[server]\nport = 9000\n[images]\nroot = "masters"\nmax_width = 4000\n')
    settings = load_settings(config, environ={})
    assert settings.server.port == 9000
    assert settings.images.max_width == 4000
    assert settings.images.root == config.parent / "masters"  # relative to the file, not the cwd


def test_environment_overrides_file(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[server]\nport = 9000\n")
    env = {
        "IIIF_SERVER_SERVER_PORT": "9100",
        "IIIF_SERVER_IMAGES_MAX_AREA": "5000000",
        "IIIF_SERVER_OUTPUT_PREFERRED_FORMATS": "webp, jpg",
        "IIIF_SERVER_SERVER_PUBLIC_BASE_URL": "https://iiif.example.org/",
    }
    settings = load_settings(config, environ=env)
    assert settings.server.port == 9100
    assert settings.images.max_area == 5_000_000
    assert settings.output.preferred_formats == ("webp", "jpg")
    assert settings.server.public_base_url == "https://iiif.example.org"


@pytest.mark.parametrize(
    ("toml", "env", "named"),
    [
        ("[server]\nport = 'eighty'\n", {}, "server.port"),
        ("[server]\nprot = 80\n", {}, "server.prot"),
        ("[sever]\nport = 80\n", {}, "[sever]"),
        ("", {"IIIF_SERVER_IMAGES_MAX_AREA": "lots"}, "images.max_area"),
        ("", {"IIIF_SERVER_IMAGES_MAXAREA": "1"}, "IIIF_SERVER_IMAGES_MAXAREA"),
        ("", {"IIIF_SERVER_OUTPUT_PREFERRED_FORMATS": "jpg,bmp"}, "output.preferred_formats"),
        ("[output]\njpeg_quality = 101\n", {}, "output.jpeg_quality"),
        ("[server]\npublic_base_url = 'example.org'\n", {}, "server.public_base_url"),
        ("[server\n", {}, "invalid TOML"),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, toml: str, env: dict[str, str], named: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ=env)
    assert named in str(caught.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(Exception, match="frozen"):
        settings.server.port = 1  # type: ignore[misc]


def test_trusted_proxies_from_the_environment_and_checked() -> None:
    environ = {**NO_FILE, "IIIF_SERVER_SERVER_TRUSTED_PROXIES": "127.0.0.1, ::1, 10.0.0.0/8"}
    assert load_settings(environ=environ).server.trusted_proxies == ("127.0.0.1", "::1", "10.0.0.0/8")
    assert load_settings(environ=NO_FILE).server.trusted_proxies == ()  # secure by default: no one
    with pytest.raises(ConfigError, match=r"server\.trusted_proxies.*'nginx' is not an IP address"):
        load_settings(environ={**NO_FILE, "IIIF_SERVER_SERVER_TRUSTED_PROXIES": "nginx"})


def test_heavy_lane_must_leave_a_thread_for_cheap_requests() -> None:
    """Running plus waiting heavy renders each hold a worker thread: at least one must stay free."""
    environ = {**NO_FILE, "IIIF_SERVER_SERVER_THREADS": "2"}
    with pytest.raises(ConfigError, match=r"heavy_concurrency \+ lanes.heavy_queue \(1 \+ 1\) must be below server"):
        load_settings(environ=environ)
    assert load_settings(environ={**environ, "IIIF_SERVER_LANES_HEAVY_QUEUE": "0"}).lanes.heavy_queue == 0
    assert load_settings(environ={**environ, "IIIF_SERVER_LANES_HEAVY_PIXELS": "0"}).server.threads == 2
