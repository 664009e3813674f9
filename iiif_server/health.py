"""Readiness: can this process serve what it is configured to serve? For load balancers and probes.

Liveness needs nothing (the process answered). Readiness checks what a request needs and
a restart cannot fix: the image root readable (an unmounted share) or the bucket reachable, Redis reachable when
``[cache] redis_url`` is set, the manifests built when there is an export. Each check says
"ok" or a short reason; reasons name no paths, URLs or addresses, since a probe endpoint
may be reachable from outside.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Check = Callable[[], str | None]  # None: ok; else the reason it is not
OK = "ok"


def images_readable(root: Path) -> Check:
    def check() -> str | None:
        try:
            with os.scandir(root) as entries:
                next(entries, None)
        except OSError:
            return "image root not readable"
        return None

    return check


def store_reachable(head: Callable[[], bool]) -> Check:
    """The bucket of the masters (``[images] source = "s3"``) answers to this server's credentials."""
    return lambda: None if head() else "image store not reachable"


def redis_reachable(ping: Callable[[], bool]) -> Check:
    return lambda: None if ping() else "unreachable"


def manifests_built(export: Path, documents: Callable[[], int]) -> Check:
    """Only when the export exists: no export means no manifests to wait for."""

    def check() -> str | None:
        if not export.is_file():
            return None
        return None if documents() > 0 else "not built"

    return check


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, Check]
    retry_after: int = 5

    def run(self) -> tuple[bool, bytes]:
        """(ready, JSON body) with every check's answer, failing ones named by their reason."""
        results = {name: check() or OK for name, check in self.checks.items()}
        ready = all(result == OK for result in results.values())
        body = {"status": "ready" if ready else "not ready", "checks": results}
        return ready, json.dumps(body, separators=(",", ":")).encode() + b"\n"
