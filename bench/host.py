"""Where and on what a benchmark ran: shared by the benchmark scripts (run them from the repository)."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def output(cmd: Sequence[str]) -> str:
    """A command's stripped stdout; empty if it cannot run."""
    with contextlib.suppress(OSError):
        return subprocess.run(list(cmd), capture_output=True, text=True, check=False).stdout.strip()
    return ""


def describe(repo: Path, python: Path) -> dict[str, Any]:
    cpu = ""
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = output(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    dirty = output(["git", "-C", str(repo), "status", "--porcelain"])
    libvips = output([str(python), "-c", "import pyvips; v = pyvips.version; print(v(0), v(1), v(2), sep='.')"])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "libvips": libvips,
        "commit": commit + ("-dirty" if dirty else ""),
        "load_before": os.getloadavg(),
    }
