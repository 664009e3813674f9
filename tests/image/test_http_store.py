"""HttpStore and [http_source] in detail (the real server is tests/test_http_source.py)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from iiif_server.cache.disk import DiskCache
from iiif_server.config import ConfigError, host_allowed, load_settings
from iiif_server.image.http_source import HttpConfig, HttpStore


def test_settings_from_the_environment_tell_http_source_from_http() -> None:
    settings = load_settings(
        os.devnull,
        {
            "IIIF_SERVER_IMAGES_SOURCE": "http",
            "IIIF_SERVER_HTTP_SOURCE_BASE_URL": "https://images.partner.example/masters/",
            "IIIF_SERVER_HTTP_SOURCE_ALLOWED_HOSTS": "images.partner.example",
            "IIIF_SERVER_HTTP_CORS_MAX_AGE": "60",
        },
    )
    assert settings.http_source.allowed_hosts == ("images.partner.example",)
    assert settings.http.cors_max_age == 60


def test_base_url_must_be_on_an_allowed_host() -> None:
    env = {"IIIF_SERVER_IMAGES_SOURCE": "http", "IIIF_SERVER_HTTP_SOURCE_BASE_URL": "https://evil.example/m/"}
    with pytest.raises(ConfigError, match="allowed_hosts"):
        load_settings(os.devnull, {**env, "IIIF_SERVER_HTTP_SOURCE_ALLOWED_HOSTS": "images.partner.example"})
    assert host_allowed("https://a.example:8443/x", ("a.example:8443",))
    assert not host_allowed("https://a.example.evil/x", ("a.example",))
    assert not host_allowed("file:///etc/passwd", ("",))


def test_names_are_quoted_urls_and_the_store_pickles_without_its_pool(tmp_path: Path) -> None:
    store = HttpStore(HttpConfig("https://p.example/m/", ("p.example",)), DiskCache(tmp_path / "c", 1000), 1 << 16)
    assert store.name("hiện vật/a b.tif") == "https://p.example/m/hi%E1%BB%87n%20v%E1%BA%ADt/a%20b.tif"
    store._client = object()  # the pool, made on first use
    copy = pickle.loads(pickle.dumps(store))
    assert copy._client is None and copy.config == store.config and copy.chunk_bytes == 1 << 16
