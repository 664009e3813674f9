"""gunicorn options derived from Settings: the production defaults are deliberate, not accidental."""

from __future__ import annotations

import os
import platform

from iiif_server.config import Settings
from iiif_server.serving import default_workers, gunicorn_options, limit_malloc_arenas


def test_defaults_are_sized_to_the_machine() -> None:
    options = gunicorn_options(Settings())
    assert options["workers"] == default_workers() == 2 * (os.cpu_count() or 1)
    assert options["worker_class"] == "gthread" and options["threads"] == 4
    assert options["bind"] == "127.0.0.1:8182"
    assert options["max_requests"] == 500_000 and options["max_requests_jitter"] == 50_000


def test_settings_override_the_defaults() -> None:
    settings = Settings().replace(
        server={"workers": 3, "threads": 2, "port": 9000, "host": "0.0.0.0", "max_requests": 0, "timeout": 120}
    )
    options = gunicorn_options(settings)
    assert (options["workers"], options["threads"], options["bind"]) == (3, 2, "0.0.0.0:9000")
    assert options["max_requests"] == 0 and options["timeout"] == 120


def test_malloc_arenas_are_limited_on_glibc() -> None:
    expected = platform.libc_ver()[0] == "glibc"
    assert limit_malloc_arenas() is expected
