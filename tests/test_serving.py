"""gunicorn options derived from Settings: the production defaults are deliberate, not accidental;
no libvips in the process that forks the workers; no render holds a worker thread past its deadline."""

from __future__ import annotations

import os
import platform
import resource
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import pyvips

from iiif_server.check import free_port, running_server
from iiif_server.config import Settings
from iiif_server.serving import default_workers, gunicorn_options, raise_open_files, serve, tune_malloc
from tests.conftest import DEMO_EXPORT, block_colour, decode, pixel


def test_defaults_are_sized_to_the_machine() -> None:
    options = gunicorn_options(Settings())
    assert options["workers"] == default_workers() == 2 * (os.cpu_count() or 1)
    assert options["worker_class"] == "iiif_server.asgi.Worker" and options["threads"] == 4  # uvicorn under gunicorn
    assert options["bind"] == "127.0.0.1:8182"
    assert options["max_requests"] == 5_000_000 and options["max_requests_jitter"] == 500_000


def test_settings_override_the_defaults() -> None:
    settings = Settings().replace(
        server={"workers": 3, "threads": 2, "port": 9000, "host": "0.0.0.0", "max_requests": 0, "timeout": 120},
        lanes={"heavy_queue": 0},  # one heavy render + none waiting leaves one of the 2 threads free
    )
    options = gunicorn_options(settings)
    assert (options["workers"], options["threads"], options["bind"]) == (3, 2, "0.0.0.0:9000")
    assert options["max_requests"] == 0 and options["timeout"] == 120


def test_serve_raises_its_open_file_limit_to_the_hard_one() -> None:
    """1 000 waiting connections per worker do not fit systemd's default soft limit of 1 024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 64:
        pytest.skip("needs a finite hard limit")
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    try:
        assert raise_open_files(1280) == hard == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_malloc_is_tuned_on_glibc() -> None:
    expected = platform.libc_ver()[0] == "glibc"
    assert tune_malloc() is expected


def test_serve_refuses_to_fork_workers_once_libvips_is_loaded() -> None:
    """Workers forked after libvips started would hang in their first threaded render: fail loudly instead."""
    assert pyvips.version(0) >= 8  # loaded in this process, as after any libvips work
    port = free_port()
    with pytest.raises(RuntimeError, match="libvips is loaded in the process that forks"):
        serve(Settings().replace(server={"port": port, "workers": 1}))
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # refused before gunicorn bound anything


def test_priming_the_manifests_leaves_the_master_free_of_libvips(demo_root: Path, tmp_path: Path) -> None:
    """``serve`` builds the manifests before forking; that build reads images with libvips, in a child."""
    script = (
        "import sys\n"
        "from iiif_server import cli, serving\n"
        "from iiif_server.config import load_settings\n"
        "cli._announce(load_settings(), demo=False)\n"
        "serving.check_no_libvips()\n"
        "print('pyvips loaded:', 'pyvips' in sys.modules)\n"
    )
    env = {
        **os.environ,
        "IIIF_SERVER_CONFIG": os.devnull,
        "IIIF_SERVER_IMAGES_ROOT": str(demo_root),
        "IIIF_SERVER_MANIFESTS_SOURCE": str(DEMO_EXPORT),
        "IIIF_SERVER_MANIFESTS_STATE_DIR": str(tmp_path / "state"),
        "IIIF_SERVER_CACHE_DISK_DIR": str(tmp_path / "cache"),
    }
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "manifests: 9 published" in result.stdout  # built (in the child)
    assert "pyvips loaded: False" in result.stdout


@pytest.mark.parametrize("worker", ["gthread", "asgi"])
def test_a_runaway_render_gets_503_and_the_worker_serves_on(image_root: Path, tmp_path: Path, worker: str) -> None:
    """A real gunicorn worker with one thread: a render past [server] render_timeout is stopped by libvips."""
    env = {
        "IIIF_SERVER_SERVER_WORKER": worker,
        "IIIF_SERVER_SERVER_RENDER_TIMEOUT": "0.2",
        "IIIF_SERVER_SERVER_THREADS": "1",  # a stuck render would leave nobody to answer the next request
        "IIIF_SERVER_LANES_HEAVY_PIXELS": "0",  # one thread: no room for a lane
        "IIIF_SERVER_IMAGES_MAX_AREA": "0",
    }
    slow = "/iiif/3/pattern.png/full/^12000,/0/default.jpg"  # 115 megapixels upscaled from 0.8
    log = tmp_path / "server.log"
    with running_server(["serve", "--images", str(image_root), "--workers", "1"], free_port(), env, log=log) as base:
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(base + slow, timeout=60)
        error = caught.value
        assert error.code == 503 and error.headers["Retry-After"] == "1"
        assert "took longer than 0.2 s" in error.read().decode()
        with urllib.request.urlopen(f"{base}/iiif/3/pattern.png/full/100,/0/default.png", timeout=60) as response:
            image = decode(response.read())
        assert (image.width, image.height) == (100, 80) and pixel(image, 5, 5) == block_colour(0, 0)
    assert f"503 for {slow}: rendering took longer than 0.2 s" in log.read_text()
