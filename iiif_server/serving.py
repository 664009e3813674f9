"""Run the Flask app under gunicorn, the production server, sized from Settings.

gthread workers: libvips releases the GIL while it works, so threads in a
worker render in parallel and share its caches. ``[server] worker = "asgi"``: uvicorn's
worker class instead, the same site behind the ASGI edge (``asgi.py``) with a pool of as
many threads.

libvips' thread pool does not survive ``fork``: a worker forked from a process
that has used libvips waits forever in its first threaded render (and gunicorn's
timeout never fires: the worker's main thread keeps heart-beating). So the process
that forks the workers never imports pyvips: work that needs libvips before serving
(demo images, the manifests' first build) runs in a spawned child
(``in_fresh_process``), and ``serve`` refuses to start if pyvips is loaded.

Metrics: prometheus_client's multiprocess mode. ``serve`` gives the workers a folder for
their values (``PROMETHEUS_MULTIPROC_DIR``, set before they fork and before prometheus_client
is imported, which reads it once), emptied at start; the master marks each exiting worker dead.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from gunicorn.app.base import BaseApplication

from .config import MetricsSettings, Settings
from .guard import MAX_HEADER_BYTES, MAX_HEADERS

T = TypeVar("T")


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings or key not in _NEWER_GUNICORN:
                self.cfg.set(key, value)

    def load(self) -> Any:
        from .app import create_app  # imported in the worker, after fork: libvips starts its threads there

        app = create_app(self.settings)
        if self.settings.server.worker == "asgi":
            from .asgi import ASGIEdge
            from .guard import ConnectionLimits

            server = self.settings.server
            return ASGIEdge(
                app,
                server.threads,
                replay=app.extensions.get("iiif_replay"),
                record=app.extensions["iiif_observed"].record,
                limits=ConnectionLimits(header_timeout=server.header_timeout, max_connections=server.max_connections),
                thread_nice=server.thread_nice,
            )
        return app


def default_workers() -> int:
    """Two processes per core: gunicorn's own per-request Python work is GIL-bound, so processes
    beat threads (measured: 4×4 served ~1.5× the requests/s of 2×4 on 2 cores, 6×4 no more)."""
    return 2 * (os.cpu_count() or 1)


_WORKER_CLASSES = {"gthread": "iiif_server.gthread.Worker", "asgi": "iiif_server.asgi.Worker"}

#: Options older gunicorn releases do not know; skipped there rather than refused.
_NEWER_GUNICORN = frozenset({"control_socket_disable"})


def gunicorn_options(settings: Settings) -> dict[str, Any]:
    server = settings.server
    return {
        "bind": f"{server.host}:{server.port}",
        "workers": server.workers or default_workers(),
        "worker_class": _WORKER_CLASSES[server.worker],
        "threads": server.threads,
        "timeout": server.timeout,
        "graceful_timeout": 10,
        "keepalive": 5,
        # gthread: gunicorn stops accepting beyond this many connections per worker; the waiting
        # ones are capped at max_connections before that (gthread.py, guard.py for asgi)
        "worker_connections": server.max_connections + server.threads,
        # gthread's parser: request line at gunicorn's maximum (~8 KiB, as guard.MAX_TARGET), one
        # header field up to guard.MAX_HEADER_BYTES, guard.MAX_HEADERS fields (414 / 431 beyond)
        "limit_request_line": 8190,
        "limit_request_field_size": MAX_HEADER_BYTES,
        "limit_request_fields": MAX_HEADERS,
        # Recycle workers now and then (a guard against slow leaks); jitter keeps them from restarting
        # together. Each restart drops that worker's memory tier and readers, so not too often.
        "max_requests": server.max_requests,
        "max_requests_jitter": server.max_requests // 10,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "iiif-server",
        # gunicorn would believe X-Forwarded-Proto from 127.0.0.1 by default; the app alone decides
        # whom to trust ([server] trusted_proxies, iiif_server.forwarded)
        "forwarded_allow_ips": "",
        "secure_scheme_headers": {},
        # gunicorn 27 opens a control socket (~/.gunicorn/gunicorn.ctl) by default: a management
        # surface nothing here uses, shared by every instance of a user. Off: deny what is not needed.
        "control_socket_disable": True,
        # the server's own access log ([server] access_log, iiif_server.observe) replaces gunicorn's
        "accesslog": None,
        **({"child_exit": _mark_dead(settings.metrics.directory)} if settings.metrics.directory else {}),
    }


def _mark_dead(directory: str) -> Callable[[Any, Any], None]:
    def child_exit(server: Any, worker: Any) -> None:
        """gunicorn hook, in the master: an exited worker's live values leave the metrics with it."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, directory)

    return child_exit


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def metrics_directory(settings: MetricsSettings) -> Iterator[Path | None]:
    """The workers' shared metrics folder, emptied of old values; a private temporary one unless
    configured (removed at exit). Exported as PROMETHEUS_MULTIPROC_DIR for the workers to inherit."""
    if not settings.enabled:
        yield None
        return
    values = sys.modules.get("prometheus_client.values")
    if values is not None and values.ValueClass is values.MutexValue:
        raise RuntimeError(
            "prometheus_client was imported before its multiprocess folder was set: "
            "the workers' metrics would not be summed"
        )
    created = not settings.directory
    directory = Path(tempfile.mkdtemp(prefix="iiif-server-metrics-") if created else settings.directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    owner = os.getpid()  # the workers fork inside this block and leave through its end too
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = str(directory)
    try:
        yield directory
    finally:
        if os.getpid() == owner:  # a worker exiting leaves the folder to the master
            if previous is None:
                os.environ.pop(MULTIPROC_ENV, None)
            else:
                os.environ[MULTIPROC_ENV] = previous
            if created:
                shutil.rmtree(directory, ignore_errors=True)


MMAP_THRESHOLD = 1 << 20  # bytes


def tune_malloc(arenas: int = 2, mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """glibc's allocator, set in the master before forking (every worker inherits it), for
    libvips' large, short-lived buffers. False (and nothing done) off glibc.

    - ``M_ARENA_MAX``: glibc gives each thread its own arena, and those fragment into RSS that is
      never returned (libvips' docs advise MALLOC_ARENA_MAX=2).
    - ``M_MMAP_THRESHOLD``, fixed at 1 MiB: by default glibc raises the threshold to the size of
      every large block freed, after which buffers of up to 32 MB come from the heap and fragment
      it. Measured in a 10-minute soak (docs/performance.md): RSS at 10 min 1 903 → 1 506 MB for
      4 workers, growth after the second minute halved, the same requests/s.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        # glibc returns 1 on success: M_ARENA_MAX is -8, M_MMAP_THRESHOLD -3
        return bool(libc.mallopt(-8, arenas)) and bool(libc.mallopt(-3, mmap_threshold))
    except (OSError, AttributeError):
        return False


def in_fresh_process(work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` in a spawned (not forked) child: libvips starts and ends there.

    ``work`` must be a module-level function of a module that does not import pyvips itself.
    Its result and exceptions come back here; its output goes to this process's stdout/stderr.
    """
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(work, *args).result()


def check_no_libvips() -> None:
    """Refuse to fork workers from a process that has loaded libvips (importing pyvips starts it)."""
    if "pyvips" in sys.modules:
        raise RuntimeError(
            "libvips is loaded in the process that forks the gunicorn workers: their renders would hang "
            "(libvips' threads do not survive fork); do libvips work in serving.in_fresh_process"
        )


#: Descriptors a worker needs besides its connections: listening socket, pass-through readers
#: ([images] handle_cache_size), Redis, logs, libvips' files in flight.
SPARE_FILES = 256


def raise_open_files(needed: int) -> int:
    """Raise this process's soft limit on open files (the workers inherit it) to the hard limit,
    so ``[server] max_connections`` waiting sockets per worker fit (systemd's default soft limit
    is 1024, and a worker out of descriptors can accept nothing, its normal clients included).
    Returns the soft limit now; warns if it is below ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    if soft != unlimited and (hard == unlimited or hard > soft):
        target = hard if hard != unlimited else max(soft, needed)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != unlimited and soft < needed:
        logging.getLogger(__name__).warning(
            "open-file limit %d is below the %d a worker may need ([server] max_connections + %d): "
            "raise LimitNOFILE (systemd) or ulimit -n",
            soft,
            needed,
            SPARE_FILES,
        )
    return soft


def serve(settings: Settings) -> None:
    check_no_libvips()
    tune_malloc()
    raise_open_files(settings.server.max_connections + settings.server.threads + SPARE_FILES)
    with metrics_directory(settings.metrics) as directory:
        if directory is not None:
            settings = settings.replace(metrics={"directory": str(directory)})
        _Gunicorn(settings, gunicorn_options(settings)).run()
