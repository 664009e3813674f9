"""Memory under sustained load: RSS of every gunicorn worker, sampled while wrk runs a mixed load.

    .venv/bin/python bench/soak.py [--minutes 10] [--interval 30]

Runs ``iiif-server serve`` with its defaults (worker recycling off, so a leak cannot hide behind
restarts) on the benchmark's 20 000 × 15 000 image, drives it with ``bench/soak.lua`` (tiles,
renders in several formats, info.json) and prints a table of RSS per worker over time, plus the
growth between the end of warm-up (first quarter) and the end. Uses only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
IMAGE = "photo-20000x15000.tif"


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else 0.0


def workers(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    found = []
    for pid in out.split():
        try:
            if b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue  # multiprocessing's helper (from the master's spawned start-up work)
        except OSError:
            continue
        found.append(int(pid))
    return sorted(found)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--port", type=int, default=8199)
    args = parser.parse_args()
    if not (BENCH / "images" / IMAGE).exists():
        print("run bench/run.py once first: it builds bench/images/", file=sys.stderr)
        return 1
    env = {
        **os.environ,
        "IIIF_SERVER_CONFIG": os.devnull,
        "IIIF_SERVER_SERVER_MAX_REQUESTS": "0",
        "IIIF_SERVER_CACHE_DISK_DIR": str(BENCH / "results" / "soak-cache"),
    }
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/iiif-server"), "serve", "--images", str(BENCH / "images"), "--port", str(args.port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/iiif/3/{IMAGE}/info.json", timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        expected = 2 * (os.cpu_count() or 1)
        for _ in range(100):  # gunicorn forks its workers one by one; wrk's keep-alive connections
            if len(workers(server.pid)) >= expected:  # would all land on the early ones
                break
            time.sleep(0.1)
        time.sleep(1)
        seconds = int(args.minutes * 60)
        load = subprocess.Popen(
            [
                "wrk",
                "-t2",
                "-c16",
                f"-d{seconds}s",
                "--timeout",
                "30s",
                "-s",
                str(BENCH / "soak.lua"),
                base,
                "--",
                IMAGE,
                "20000",
                "15000",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        pids = workers(server.pid)
        print(f"workers {pids}; sampling RSS (MB) every {args.interval:.0f} s for {args.minutes:g} min")
        print("| t (s) | " + " | ".join(f"worker {i + 1}" for i in range(len(pids))) + " | total |")
        print("|---:|" + "---:|" * (len(pids) + 1))
        samples: list[list[float]] = []
        started = time.monotonic()
        while load.poll() is None:
            row = [rss_mb(pid) for pid in pids]
            samples.append(row)
            elapsed = time.monotonic() - started
            print(f"| {elapsed:.0f} | " + " | ".join(f"{v:.0f}" for v in row) + f" | {sum(row):.0f} |", flush=True)
            time.sleep(args.interval)
        output = load.communicate()[0]
        summary = [line.strip() for line in output.splitlines() if re.match(r"\s*(Requests/sec|Non-2xx|Socket)", line)]
        warm = samples[max(1, len(samples) // 4) - 1]
        last = samples[-1]
        print("\n" + "\n".join(summary))
        print(
            f"growth after warm-up (sample {max(1, len(samples) // 4)} -> last): "
            + ", ".join(f"{b - a:+.0f} MB" for a, b in zip(warm, last, strict=True))
        )
        return 0
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
