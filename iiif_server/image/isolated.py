"""Work in a child process that can be killed, for the phases libvips cannot stop: GIF quantisation, AV1 encoding.

libvips stops a render when its ``eval`` callback kills the image (``render._Deadline``), but
``gifsave`` quantises, dithers and LZW-encodes the whole frame with no ``eval`` in between: that
tail costs ~0.2-3 µs per output pixel (measured: a 10000×10000 GIF spent 7 s computing pixels, then
111 s unstoppable), so a large GIF ran far past ``[server] render_timeout``. Such a render runs
here instead, in a spawned process (never forked: libvips' threads do not survive ``fork``) that
is killed the moment the deadline passes or every client has gone; killing a process is the one
stop that always works. Starting one costs ~0.3-0.6 s, paid only by GIFs and AVIFs large enough for
it to matter (``render.ISOLATED_GIF_PIXELS``, ``ISOLATED_AVIF_PIXELS``: AV1 encodes the whole picture
with no ``eval`` either). Imports nothing of ours: the work names its own function.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import pickle
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

_POLL = 0.05  # seconds between looks at the stop condition while the child works
_PR_SET_PDEATHSIG = 1


class Stopped(Exception):
    """The child was killed because ``stopped()`` said so; the caller knows why."""


class ChildFailed(Exception):
    """The work raised in the child (its type and message), or the child died."""


def run_in_child(work: Callable[..., bytes], args: tuple[Any, ...], stopped: Callable[[], bool]) -> bytes:
    """``work(*args)`` in a fresh process, killed as soon as ``stopped()``. ``work`` must be a module-level function."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(sender, pickle.dumps((work, args))), name="iiif-work", daemon=True)
    child.start()
    sender.close()
    try:
        while not receiver.poll(_POLL):
            if stopped():
                raise Stopped
            if not child.is_alive() and not receiver.poll(0):
                raise ChildFailed(f"the child process exited with status {child.exitcode}")
        ok, payload = receiver.recv()
    except EOFError:
        raise ChildFailed(f"the child process exited with status {child.exitcode}") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiver.close()
    if not ok:
        raise ChildFailed(payload)
    return payload  # type: ignore[no-any-return]


def _child(sender: Connection, pickled: bytes) -> None:
    """In the child: die with the worker; keep out of its metrics folder; work; send the bytes or the error.

    The work arrives pickled and is loaded only here, after the environment is set: loading it
    imports our modules, and with them prometheus_client, which would otherwise write files into
    the workers' metrics folder for a pid the master never marks dead.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    result: tuple[bool, Any]
    try:
        work, args = pickle.loads(pickled)
        result = True, work(*args)
    except Exception as error:
        result = False, f"{type(error).__name__}: {error}".splitlines()[0]
    sender.send(result)
    sender.close()
